/* edgedigit: int8 kernels of the native backend (see edgedigit_kernels.h). Hand-written.
 *
 * Every function reproduces TFLM's reference kernel for int8 bit for bit. Where this code differs in
 * form (the folded FC bias, the ARMv7E-M SMLAD path), the int32 sums are the same numbers. */
#include "edgedigit_kernels.h"

#include <stddef.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define EDGEDIGIT_USE_DSP 1
#else
#define EDGEDIGIT_USE_DSP 0
#endif

/* ---- fixed-point helpers (gemmlowp fixedpoint.h, tflite common.cc) ---------------------------------- */

int32_t edgedigit_srdhm(int32_t a, int32_t b)
{
    const int overflow = (a == b) && (a == INT32_MIN);
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int32_t nudge = ab >= 0 ? ((int32_t)1 << 30) : (1 - ((int32_t)1 << 30));
    const int64_t v = ab + nudge;
    /* gemmlowp divides by 2^31 truncating toward zero; shifts do the same without a 64-bit division call */
    const int32_t high = (int32_t)(v >= 0 ? v >> 31 : -((-v) >> 31));
    return overflow ? INT32_MAX : high;
}

int32_t edgedigit_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t edgedigit_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left_shift = shift > 0 ? (int)shift : 0;
    const int right_shift = shift > 0 ? 0 : (int)-shift;
    /* x * (1 << left_shift) wraps in TFLM (int32 overflow); do it on uint32 to keep it defined. */
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return edgedigit_rounding_divide_by_pot(edgedigit_srdhm(shifted, multiplier), right_shift);
}

static int8_t requantize(int32_t acc, int32_t multiplier, int32_t shift, int32_t offset, int32_t lo, int32_t hi)
{
    int32_t v = edgedigit_multiply_by_quantized_multiplier(acc, multiplier, shift) + offset;
    if (v < lo) {
        v = lo;
    }
    if (v > hi) {
        v = hi;
    }
    return (int8_t)v;
}

/* ---- FULLY_CONNECTED --------------------------------------------------------------------------------- */

/* Weight layout (prepared at code generation time, see edgedigit/codegen/native.py): rows are taken in
 * blocks of four; within a block, the weights of the four rows are interleaved by groups of four inputs
 * (row 0 inputs 0..3, row 1 inputs 0..3, row 2 .., row 3 .., row 0 inputs 4..7, ...), then the n % 4
 * trailing inputs of row 0, 1, 2, 3. Rows left over after the last full block are stored row by row.
 * A block of four rows still starts at weights + first_row * n. */

#if EDGEDIGIT_USE_DSP
static uint32_t load4(const int8_t *p)
{
    uint32_t v;
    /* one LDR (Cortex-M4 allows unaligned word loads); the builtin also under -ffreestanding/-fno-builtin */
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

/* bytes 1 and 3 of v, sign-extended to two int16 lanes */
static int16x2_t sxtb16_ror8(uint32_t v)
{
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* Four rows at once: each word of input is sign-extended once (SXTB16 takes bytes 0 and 2, the rotated
 * form bytes 1 and 3) and feeds two SMLADs per row; the interleaved weights are read with one pointer. */
static void dot4(const int8_t *x, const int8_t *w, int32_t n, int32_t acc[4])
{
    const int8_t *x_end = x + (n & ~3);
    const int32_t tail = n & 3;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t k;
    while (x != x_end) {
        const uint32_t xv = load4(x);
        const int16x2_t x02 = __sxtb16(xv);
        const int16x2_t x13 = sxtb16_ror8(xv);
        uint32_t wv = load4(w);
        a0 = __smlad(__sxtb16(wv), x02, a0);
        a0 = __smlad(sxtb16_ror8(wv), x13, a0);
        wv = load4(w + 4);
        a1 = __smlad(__sxtb16(wv), x02, a1);
        a1 = __smlad(sxtb16_ror8(wv), x13, a1);
        wv = load4(w + 8);
        a2 = __smlad(__sxtb16(wv), x02, a2);
        a2 = __smlad(sxtb16_ror8(wv), x13, a2);
        wv = load4(w + 12);
        a3 = __smlad(__sxtb16(wv), x02, a3);
        a3 = __smlad(sxtb16_ror8(wv), x13, a3);
        x += 4;
        w += 16;
    }
    for (k = 0; k < tail; ++k) {
        const int32_t xk = x[k];
        a0 += (int32_t)w[k] * xk;
        a1 += (int32_t)w[tail + k] * xk;
        a2 += (int32_t)w[2 * tail + k] * xk;
        a3 += (int32_t)w[3 * tail + k] * xk;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

static int32_t dot1(const int8_t *x, const int8_t *w, int32_t n, int32_t acc)
{
    int32_t d = 0;
    for (; d + 4 <= n; d += 4) {
        const uint32_t xv = load4(x + d);
        const uint32_t wv = load4(w + d);
        acc = __smlad(__sxtb16(wv), __sxtb16(xv), acc);
        acc = __smlad(sxtb16_ror8(wv), sxtb16_ror8(xv), acc);
    }
    for (; d < n; ++d) {
        acc += (int32_t)w[d] * (int32_t)x[d];
    }
    return acc;
}
#else
/* Portable C, same layout and the same int32 sums as the DSP path. */
static void dot4(const int8_t *x, const int8_t *w, int32_t n, int32_t acc[4])
{
    const int32_t tail = n & 3;
    int32_t d, r, k;
    for (d = 0; d + 4 <= n; d += 4) {
        for (r = 0; r < 4; ++r) {
            int32_t a = acc[r];
            for (k = 0; k < 4; ++k) {
                a += (int32_t)w[4 * r + k] * (int32_t)x[d + k];
            }
            acc[r] = a;
        }
        w += 16;
    }
    for (r = 0; r < 4; ++r) {
        for (k = 0; k < tail; ++k) {
            acc[r] += (int32_t)w[r * tail + k] * (int32_t)x[d + k];
        }
    }
}

static int32_t dot1(const int8_t *x, const int8_t *w, int32_t n, int32_t acc)
{
    int32_t d;
    for (d = 0; d < n; ++d) {
        acc += (int32_t)w[d] * (int32_t)x[d];
    }
    return acc;
}
#endif /* EDGEDIGIT_USE_DSP */

void edgedigit_fully_connected(const edgedigit_fc_t *p, const int8_t *input, int8_t *output)
{
    const int32_t n = p->in_depth;
    int32_t b;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * n;
        int8_t *out = output + b * p->out_depth;
        int32_t c = 0;
        for (; c + 4 <= p->out_depth; c += 4) {
            int32_t acc[4];
            int k;
            for (k = 0; k < 4; ++k) {
                acc[k] = p->bias[c + k];
            }
            dot4(x, p->weights + c * n, n, acc);
            for (k = 0; k < 4; ++k) {
                out[c + k] = requantize(acc[k], p->multiplier[c + k], p->shift[c + k], p->output_offset,
                                        p->act_min, p->act_max);
            }
        }
        for (; c < p->out_depth; ++c) {
            const int32_t acc = dot1(x, p->weights + c * n, n, p->bias[c]);
            out[c] = requantize(acc, p->multiplier[c], p->shift[c], p->output_offset, p->act_min, p->act_max);
        }
    }
}

/* ---- CONV_2D / DEPTHWISE_CONV_2D (reference_integer_ops::ConvPerChannel / DepthwiseConvPerChannel) ---- */

/* First and one-past-last filter tap whose input row/column lies inside the image (zero padding: TFLM
 * omits the taps outside, which is what skipping them does). */
static void tap_range(int32_t origin, int32_t dilation, int32_t taps, int32_t size, int32_t *first, int32_t *end)
{
    int32_t f = 0;
    int32_t e = taps;
    while (f < taps && origin + dilation * f < 0) {
        ++f;
    }
    while (e > f && origin + dilation * (e - 1) >= size) {
        --e;
    }
    *first = f;
    *end = e;
}

void edgedigit_conv2d(const edgedigit_conv_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, out_h = p->out_h, out_w = p->out_w;
    const int32_t out_c = p->out_c, k_h = p->k_h, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t input_offset = p->input_offset;
    const int8_t *const weights = p->weights;
    int32_t b, oy, ox, oc, fy, fx, ic;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * in_h * in_w * in_c;
        int8_t *out = output + b * out_h * out_w * out_c;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            int32_t fy0, fy1;
            tap_range(y0, dil_h, k_h, in_h, &fy0, &fy1);
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                int32_t fx0, fx1;
                tap_range(x0, dil_w, k_w, in_w, &fx0, &fx1);
                for (oc = 0; oc < out_c; ++oc) {
                    const int8_t *w = weights + oc * k_h * k_w * in_c;
                    int32_t acc = 0;
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int8_t *row = in + (y0 + dil_h * fy) * in_w * in_c;
                        for (fx = fx0; fx < fx1; ++fx) {
                            const int8_t *px = row + (x0 + dil_w * fx) * in_c;
                            const int8_t *pw = w + (fy * k_w + fx) * in_c;
                            for (ic = 0; ic < in_c; ++ic) {
                                acc += (int32_t)pw[ic] * ((int32_t)px[ic] + input_offset);
                            }
                        }
                    }
                    if (p->bias != NULL) {
                        acc += p->bias[oc];
                    }
                    out[(oy * out_w + ox) * out_c + oc] =
                        requantize(acc, p->multiplier[oc], p->shift[oc], p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}

void edgedigit_depthwise_conv2d(const edgedigit_conv_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, out_h = p->out_h, out_w = p->out_w;
    const int32_t out_c = p->out_c, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t depth_multiplier = p->depth_multiplier, input_offset = p->input_offset;
    const int8_t *const weights = p->weights;
    int32_t b, oy, ox, ic, m, fy, fx;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * in_h * in_w * in_c;
        int8_t *out = output + b * out_h * out_w * out_c;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            int32_t fy0, fy1;
            tap_range(y0, dil_h, p->k_h, in_h, &fy0, &fy1);
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                int32_t fx0, fx1;
                tap_range(x0, dil_w, k_w, in_w, &fx0, &fx1);
                for (ic = 0; ic < in_c; ++ic) {
                    for (m = 0; m < depth_multiplier; ++m) {
                        const int32_t oc = m + ic * depth_multiplier;
                        int32_t acc = 0;
                        for (fy = fy0; fy < fy1; ++fy) {
                            const int8_t *row = in + (y0 + dil_h * fy) * in_w * in_c + ic;
                            const int8_t *wrow = weights + fy * k_w * out_c + oc;
                            for (fx = fx0; fx < fx1; ++fx) {
                                acc += (int32_t)wrow[fx * out_c] * ((int32_t)row[(x0 + dil_w * fx) * in_c] + input_offset);
                            }
                        }
                        if (p->bias != NULL) {
                            acc += p->bias[oc];
                        }
                        out[(oy * out_w + ox) * out_c + oc] = requantize(
                            acc, p->multiplier[oc], p->shift[oc], p->output_offset, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}

/* ---- MAX_POOL_2D / AVERAGE_POOL_2D (reference_integer_ops::MaxPool / AveragePool) -------------------- */

static int32_t max_i32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static int32_t min_i32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

void edgedigit_max_pool(const edgedigit_pool_t *p, const int8_t *input, int8_t *output)
{
    int32_t b, oy, ox, c, fy, fx;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * p->in_h * p->in_w * p->channels;
        int8_t *out = output + b * p->out_h * p->out_w * p->channels;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = max_i32(0, -y0);
            const int32_t fy1 = min_i32(p->f_h, p->in_h - y0);
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = max_i32(0, -x0);
                const int32_t fx1 = min_i32(p->f_w, p->in_w - x0);
                for (c = 0; c < p->channels; ++c) {
                    int32_t v = -128;
                    for (fy = fy0; fy < fy1; ++fy) {
                        for (fx = fx0; fx < fx1; ++fx) {
                            v = max_i32(v, in[((y0 + fy) * p->in_w + (x0 + fx)) * p->channels + c]);
                        }
                    }
                    v = max_i32(v, p->act_min);
                    v = min_i32(v, p->act_max);
                    out[(oy * p->out_w + ox) * p->channels + c] = (int8_t)v;
                }
            }
        }
    }
}

int edgedigit_average_pool(const edgedigit_pool_t *p, const int8_t *input, int8_t *output)
{
    int32_t b, oy, ox, c, fy, fx;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * p->in_h * p->in_w * p->channels;
        int8_t *out = output + b * p->out_h * p->out_w * p->channels;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = max_i32(0, -y0);
            const int32_t fy1 = min_i32(p->f_h, p->in_h - y0);
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = max_i32(0, -x0);
                const int32_t fx1 = min_i32(p->f_w, p->in_w - x0);
                for (c = 0; c < p->channels; ++c) {
                    int32_t acc = 0;
                    int32_t count = 0;
                    for (fy = fy0; fy < fy1; ++fy) {
                        for (fx = fx0; fx < fx1; ++fx) {
                            acc += in[((y0 + fy) * p->in_w + (x0 + fx)) * p->channels + c];
                            ++count;
                        }
                    }
                    if (count == 0) {
                        return -1;
                    }
                    /* round half away from zero, with C's truncating division (as TFLM) */
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    acc = max_i32(acc, p->act_min);
                    acc = min_i32(acc, p->act_max);
                    out[(oy * p->out_w + ox) * p->channels + c] = (int8_t)acc;
                }
            }
        }
    }
    return 0;
}

/* ---- SOFTMAX (reference_ops::Softmax int8 -> int8, gemmlowp fixed point) ----------------------------- */

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0 */
static int32_t saturating_mul_by_pot(int32_t x, int exponent)
{
    const int32_t threshold = ((int32_t)1 << (31 - exponent)) - 1;
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t constant_term = 1895147668;    /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883; /* 1/3 */
    const int32_t x = a + ((int32_t)1 << 28);             /* a + 1/8 */
    const int32_t x2 = edgedigit_srdhm(x, x);
    const int32_t x3 = edgedigit_srdhm(x2, x);
    const int32_t x4 = edgedigit_srdhm(x2, x2);
    const int32_t x4_over_4 = edgedigit_rounding_divide_by_pot(x4, 2);
    const int32_t poly = edgedigit_rounding_divide_by_pot(
        edgedigit_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + edgedigit_srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26 (kScaledDiffIntegerBits = 5), result in Q0.31 */
static int32_t exp_on_negative_values_q5(int32_t a)
{
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int fractional_bits = 26;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_mul_by_pot(a_mod_quarter_minus_one_quarter, 5)); /* Rescale<0> from Q5.26 */
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    int k;
    for (k = 0; k < 7; ++k) { /* barrel shifter over exponents -2 .. 4 */
        if (remainder & ((int32_t)1 << (fractional_bits - 2 + k))) {
            result = edgedigit_srdhm(result, multipliers[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + x) for x in [0, 1), Q0.31 in and out (Newton-Raphson, 3 iterations) */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int64_t sum = (int64_t)a + (int64_t)INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2); /* RoundingHalfSum */
    const int32_t constant_48_over_17 = 1515870810;                                /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540;                           /* Q2.29 */
    const int32_t one_q2 = (int32_t)1 << 29;
    int32_t x = constant_48_over_17 + edgedigit_srdhm(half_denominator, constant_neg_32_over_17);
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = edgedigit_srdhm(half_denominator, x);
        const int32_t one_minus_half_denominator_times_x = one_q2 - half_denominator_times_x;
        x = x + saturating_mul_by_pot(edgedigit_srdhm(x, one_minus_half_denominator_times_x), 2);
    }
    return saturating_mul_by_pot(x, 1);
}

static int count_leading_zeros(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

static int32_t softmax_exp(const edgedigit_softmax_t *p, int32_t diff)
{
    /* MultiplyByQuantizedMultiplierGreaterThanOne: diff_min keeps diff << shift inside int32 */
    const int32_t rescaled = edgedigit_srdhm((int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
    return exp_on_negative_values_q5(rescaled);
}

void edgedigit_softmax(const edgedigit_softmax_t *p, const int8_t *input, int8_t *output)
{
    int32_t i, c;
    for (i = 0; i < p->outer; ++i) {
        const int8_t *in = input + i * p->depth;
        int8_t *out = output + i * p->depth;
        int32_t max_in_row = -128;
        int32_t sum_of_exps = 0; /* Q12.19 */
        int headroom_plus_one, num_bits_over_unit, exponent;
        int32_t shifted_scale;
        for (c = 0; c < p->depth; ++c) {
            max_in_row = max_i32(max_in_row, in[c]);
        }
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)in[c] - max_in_row;
            if (diff >= p->diff_min) {
                sum_of_exps += edgedigit_rounding_divide_by_pot(softmax_exp(p, diff), 12); /* Rescale<12> */
            }
        }
        /* GetReciprocal(sum_of_exps, 12, &num_bits_over_unit) */
        headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
        num_bits_over_unit = 12 - headroom_plus_one;
        shifted_scale = one_over_one_plus_x_for_x_in_0_1(
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31)));
        exponent = num_bits_over_unit + 31 - 8;
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)in[c] - max_in_row;
            int32_t v = -128;
            if (diff >= p->diff_min) {
                const int32_t e = softmax_exp(p, diff);
                v = edgedigit_rounding_divide_by_pot(edgedigit_srdhm(shifted_scale, e), exponent) - 128;
                v = min_i32(max_i32(v, -128), 127);
            }
            out[c] = (int8_t)v;
        }
    }
}
