/* edgedigit: int8 reduction kernels of the native backend (see edgedigit_kernels_reduce.h). Hand-written. */
#include "edgedigit_kernels_reduce.h"

#include "edgedigit_kernels.h"

/* Advance a multi-index over `dims` by one element (innermost loop last); returns the new element offset. */
static int32_t advance(int32_t offset, int32_t *index, const int32_t *dims, const int32_t *strides)
{
    int d;
    for (d = EDGEDIGIT_REDUCE_RANK - 1; d >= 0; --d) {
        offset += strides[d];
        if (++index[d] < dims[d]) {
            return offset;
        }
        offset -= strides[d] * dims[d];
        index[d] = 0;
    }
    return offset;
}

void edgedigit_mean(const edgedigit_mean_t *p, const int8_t *input, int8_t *output)
{
    int32_t kept[EDGEDIGIT_REDUCE_RANK] = {0, 0, 0, 0, 0, 0};
    int32_t base = 0;
    int32_t o, k;
    for (o = 0; o < p->outputs; ++o) {
        int32_t reduced[EDGEDIGIT_REDUCE_RANK] = {0, 0, 0, 0, 0, 0};
        int32_t at = 0;
        int32_t sum = 0;
        int32_t v;
        for (k = 0; k < p->count; ++k) {
            sum += input[base + at];
            at = advance(at, reduced, p->reduced_dims, p->reduced_strides);
        }
        v = edgedigit_multiply_by_quantized_multiplier(sum + p->sum_offset, p->multiplier, p->shift) +
            p->output_offset;
        output[o] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
        base = advance(base, kept, p->kept_dims, p->kept_strides);
    }
}
