/* edgedigit: int8 layout kernels of the native backend (see edgedigit_kernels_layout.h). Hand-written. */
#include "edgedigit_kernels_layout.h"

#include <stddef.h>

static void copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    int32_t k;
    for (k = 0; k < n; ++k) {
        dst[k] = src[k];
    }
}

/* ---- PAD (reference_ops::Pad with the output zero point as the value) --------------------------------- */

void edgedigit_pad(const edgedigit_pad_t *p, const int8_t *input, int8_t *output)
{
    const int32_t *in = p->in_dims;
    const int32_t *o = p->out_dims;
    const int32_t *b = p->before;
    const int8_t value = (int8_t)p->pad_value;
    const int32_t row = in[4];
    int32_t total = 1;
    int32_t k, i0, i1, i2, i3;
    for (k = 0; k < EDGEDIGIT_PAD_RANK; ++k) {
        total *= o[k];
    }
    for (k = 0; k < total; ++k) {
        output[k] = value;
    }
    for (i0 = 0; i0 < in[0]; ++i0) {
        for (i1 = 0; i1 < in[1]; ++i1) {
            for (i2 = 0; i2 < in[2]; ++i2) {
                for (i3 = 0; i3 < in[3]; ++i3) {
                    const int32_t at =
                        ((((i0 + b[0]) * o[1] + i1 + b[1]) * o[2] + i2 + b[2]) * o[3] + i3 + b[3]) * o[4] + b[4];
                    copy_bytes(output + at, input, row);
                    input += row;
                }
            }
        }
    }
}

/* ---- CONCATENATION (reference_ops::Concatenation) ----------------------------------------------------- */

void edgedigit_concatenation(const edgedigit_concat_t *p, const int8_t *const *inputs, int8_t *output)
{
    int32_t i, k;
    for (i = 0; i < p->outer; ++i) {
        for (k = 0; k < p->count; ++k) {
            const int32_t n = p->sizes[k];
            copy_bytes(output, inputs[k] + (size_t)i * (size_t)n, n);
            output += n;
        }
    }
}
