/* edgedigit: int8 elementwise kernels of the native backend (see edgedigit_kernels_elementwise.h).
 * Hand-written. Every function reproduces TFLM's reference kernel for int8 bit for bit. */
#include "edgedigit_kernels_elementwise.h"

#include "edgedigit_kernels.h"

static int32_t clamp_i32(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* One row of the loop nest: n elements, the inputs advancing by sa and sb (0 or 1). */
typedef void (*edgedigit_row_fn)(const void *p, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                                 int8_t *out, int32_t n);

/* reference_ops::BroadcastBinaryOpSimple: every loop but the innermost here, the innermost in row(). */
static void broadcast(const edgedigit_broadcast_t *s, edgedigit_row_fn row, const void *p, const int8_t *in1,
                      const int8_t *in2, int8_t *out)
{
    const int32_t *d = s->dims;
    const int32_t *s1 = s->stride1;
    const int32_t *s2 = s->stride2;
    const int32_t n = d[5];
    int32_t i0, i1, i2, i3, i4;
    for (i0 = 0; i0 < d[0]; ++i0) {
        for (i1 = 0; i1 < d[1]; ++i1) {
            for (i2 = 0; i2 < d[2]; ++i2) {
                for (i3 = 0; i3 < d[3]; ++i3) {
                    for (i4 = 0; i4 < d[4]; ++i4) {
                        const int8_t *a = in1 + i0 * s1[0] + i1 * s1[1] + i2 * s1[2] + i3 * s1[3] + i4 * s1[4];
                        const int8_t *b = in2 + i0 * s2[0] + i1 * s2[1] + i2 * s2[2] + i3 * s2[3] + i4 * s2[4];
                        row(p, a, s1[5], b, s2[5], out, n);
                        out += n;
                    }
                }
            }
        }
    }
}

/* ---- ADD (reference_integer_ops::AddFunc) ------------------------------------------------------------- */

static void add_row(const void *params, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb, int8_t *out,
                    int32_t n)
{
    const edgedigit_add_t *p = (const edgedigit_add_t *)params;
    const int32_t scale = (int32_t)1 << p->left_shift;
    int32_t k;
    for (k = 0; k < n; ++k) {
        /* (x + offset) * 2^20 stays within int32: |x + offset| <= 255 */
        const int32_t x1 = ((int32_t)a[k * sa] + p->input1_offset) * scale;
        const int32_t x2 = ((int32_t)b[k * sb] + p->input2_offset) * scale;
        const int32_t s1 = edgedigit_multiply_by_quantized_multiplier(x1, p->input1_multiplier, p->input1_shift);
        const int32_t s2 = edgedigit_multiply_by_quantized_multiplier(x2, p->input2_multiplier, p->input2_shift);
        const int32_t v = edgedigit_multiply_by_quantized_multiplier(s1 + s2, p->output_multiplier, p->output_shift) +
                          p->output_offset;
        out[k] = (int8_t)clamp_i32(v, p->act_min, p->act_max);
    }
}

void edgedigit_add(const edgedigit_add_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    broadcast(&p->shape, add_row, p, input1, input2, output);
}

/* ---- MUL (reference_integer_ops::MulElementwise) ------------------------------------------------------ */

static void mul_row(const void *params, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb, int8_t *out,
                    int32_t n)
{
    const edgedigit_mul_t *p = (const edgedigit_mul_t *)params;
    int32_t k;
    for (k = 0; k < n; ++k) {
        const int32_t x1 = (int32_t)a[k * sa] + p->input1_offset;
        const int32_t x2 = (int32_t)b[k * sb] + p->input2_offset;
        const int32_t v =
            edgedigit_multiply_by_quantized_multiplier(x1 * x2, p->output_multiplier, p->output_shift) +
            p->output_offset;
        out[k] = (int8_t)clamp_i32(v, p->act_min, p->act_max);
    }
}

void edgedigit_mul(const edgedigit_mul_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    broadcast(&p->shape, mul_row, p, input1, input2, output);
}
