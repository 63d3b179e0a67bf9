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

/* Kernels that run once per inference on a few values (softmax) are compiled for size on the Cortex-M
 * (GCC's cold attribute): flash matters there more than a few hundred instructions. */
#if EDGEDIGIT_USE_DSP
#define EDGEDIGIT_SMALL __attribute__((cold))
#else
#define EDGEDIGIT_SMALL
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

#if EDGEDIGIT_USE_DSP
__attribute__((noinline)) /* once per FC output: one copy keeps the Cortex-M firmware small */
#endif
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
/* The fast requantization of CONV_2D and FULLY_CONNECTED (fast_requantize, decided at code generation
 * time when every channel has a right shift of at least 1 and |acc| < 2^30 for every input): SaturatingRoundingDoublingHighMul(acc, m)
 * is SMMULR(2 acc, m) = (2 acc m + 2^31) >> 32 (2 acc fits in int32), and RoundingDivideByPOT(s, r) is
 * (s + 2^(r-1) - (s < 0)) >> r (no overflow: |s| < 2^30). Both equal TFLM's to the bit. */
static int32_t smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static int32_t rounding_shift(int32_t s, int32_t half, int32_t right)
{
    return (s + half - (int32_t)((uint32_t)s >> 31)) >> right;
}

static int8_t clamp8(int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (int8_t)v;
}

static uint32_t load4(const int8_t *p)
{
    uint32_t v;
    /* one LDR (Cortex-M4 allows unaligned word loads); the builtin also under -ffreestanding/-fno-builtin */
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

/* The end pointer of the assembler loops below: in r7 when optimizing (r7 is then free: the functions
 * that hold these loops have no frame pointer), else (-O0, where r7 is the frame pointer) read from memory
 * into the scratch register r6 before the compare. */
#if defined(__OPTIMIZE__)
#define EDGEDIGIT_LOOP_END(value) register const uint32_t *end __asm__("r7") = (value)
#define EDGEDIGIT_CMP_END "cmp %[px], %[end]\n\t"
#define EDGEDIGIT_END_OPERAND(e) "r"(e)
#else
#define EDGEDIGIT_LOOP_END(value) const uint32_t *end = (value)
#define EDGEDIGIT_CMP_END "ldr r6, %[end]\n\tcmp %[px], r6\n\t"
#define EDGEDIGIT_END_OPERAND(e) "m"(e)
#endif

/* bytes 1 and 3 of v, sign-extended to two int16 lanes */
static int16x2_t sxtb16_ror8(uint32_t v)
{
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* Four rows at once on the input widened once (xw: per group of four inputs, SXTB16 of the word then of
 * the word rotated by 8): per group, one LDM of the input pair, one LDM of the four rows' interleaved
 * weights (word aligned), eight SXTB16 and eight SMLAD for 16 multiply-accumulates; then the n % 4
 * trailing inputs in C. */
static void dot4(const int8_t *x, const uint32_t *xw, const int8_t *w, int32_t n, int32_t acc[4])
{
    const int32_t groups = n >> 2;
    const int32_t tail = n & 3;
    register int32_t a0 __asm__("r8") = acc[0];
    register int32_t a1 __asm__("r9") = acc[1];
    register int32_t a2 __asm__("r10") = acc[2];
    register int32_t a3 __asm__("r11") = acc[3];
    int32_t k;
#define EDGEDIGIT_DOT4_GROUP                                                                                       \
    "ldm %[px]!, {r0, r1}\n\t"                                                                                     \
    "ldm %[pw]!, {r2, r3, r4, r5}\n\t"                                                                             \
    "sxtb16 r6, r2\n\t"                                                                                            \
    "sxtb16 r2, r2, ror #8\n\t"                                                                                    \
    "smlad %[a0], r6, r0, %[a0]\n\t"                                                                               \
    "smlad %[a0], r2, r1, %[a0]\n\t"                                                                               \
    "sxtb16 r6, r3\n\t"                                                                                            \
    "sxtb16 r3, r3, ror #8\n\t"                                                                                    \
    "smlad %[a1], r6, r0, %[a1]\n\t"                                                                               \
    "smlad %[a1], r3, r1, %[a1]\n\t"                                                                               \
    "sxtb16 r6, r4\n\t"                                                                                            \
    "sxtb16 r4, r4, ror #8\n\t"                                                                                    \
    "smlad %[a2], r6, r0, %[a2]\n\t"                                                                               \
    "smlad %[a2], r4, r1, %[a2]\n\t"                                                                               \
    "sxtb16 r6, r5\n\t"                                                                                            \
    "sxtb16 r5, r5, ror #8\n\t"                                                                                    \
    "smlad %[a3], r6, r0, %[a3]\n\t"                                                                               \
    "smlad %[a3], r5, r1, %[a3]\n\t"
    if (groups > 0) {
        register const uint32_t *px __asm__("r12") = xw;
        register const int8_t *pw __asm__("lr") = w;
        EDGEDIGIT_LOOP_END(xw + 2 * groups);
        if (groups & 1) {
            __asm__ volatile(EDGEDIGIT_DOT4_GROUP
                             : [px] "+r"(px), [pw] "+r"(pw), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2),
                               [a3] "+r"(a3)
                             :
                             : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "memory");
        }
        if (groups > 1) { /* two groups per turn */
            __asm__ volatile("1:\n\t" EDGEDIGIT_DOT4_GROUP EDGEDIGIT_DOT4_GROUP
                             EDGEDIGIT_CMP_END
                             "bne 1b\n\t"
                             : [px] "+r"(px), [pw] "+r"(pw), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2),
                               [a3] "+r"(a3)
                             : [end] EDGEDIGIT_END_OPERAND(end)
                             : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "cc", "memory");
        }
        w = pw;
    }
#undef EDGEDIGIT_DOT4_GROUP
    x += groups * 4;
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

/* The input's groups of four widened to int16 in SXTB16 order (see dot4). */
static void widen(const int8_t *x, int32_t n, uint32_t *xw)
{
    int32_t g;
    for (g = 0; g < n >> 2; ++g) {
        const uint32_t v = load4(x + 4 * g);
        xw[2 * g] = (uint32_t)__sxtb16(v);
        xw[2 * g + 1] = (uint32_t)sxtb16_ror8(v);
    }
}

#else
/* Portable C, same layout and the same int32 sums as the DSP path. */
static void dot4(const int8_t *x, const uint32_t *xw, const int8_t *w, int32_t n, int32_t acc[4])
{
    const int32_t tail = n & 3;
    int32_t d, r, k;
    (void)xw;
    for (d = 0; d + 4 <= n; d += 4) {
        for (r = 0; r < 4; ++r) {
            int32_t a = acc[r];
            for (k = 0; k < 4; ++k) {
                a += (int32_t)EDGEDIGIT_ROM_I8(&w[4 * r + k]) * (int32_t)x[d + k];
            }
            acc[r] = a;
        }
        w += 16;
    }
    for (r = 0; r < 4; ++r) {
        for (k = 0; k < tail; ++k) {
            acc[r] += (int32_t)EDGEDIGIT_ROM_I8(&w[r * tail + k]) * (int32_t)x[d + k];
        }
    }
}

#endif /* EDGEDIGIT_USE_DSP */

/* The rows left after the blocks of four (row by row). */
static int32_t dot1(const int8_t *x, const int8_t *w, int32_t n, int32_t acc)
{
    int32_t d;
    for (d = 0; d < n; ++d) {
        acc += (int32_t)EDGEDIGIT_ROM_I8(&w[d]) * (int32_t)x[d];
    }
    return acc;
}

#if EDGEDIGIT_USE_DSP
__attribute__((noinline))
#endif
static void fully_connected(const edgedigit_fc_t *p, const int8_t *input, int8_t *output, uint32_t *xw)
{
    const int32_t n = p->in_depth;
    int32_t b;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * n;
        int8_t *out = output + b * p->out_depth;
        int32_t c = 0;
#if EDGEDIGIT_USE_DSP
        widen(x, n, xw);
#endif
        for (; c + 4 <= p->out_depth; c += 4) {
            int32_t acc[4];
            int k;
            for (k = 0; k < 4; ++k) {
                acc[k] = EDGEDIGIT_ROM_I32(&p->bias[c + k]);
            }
            dot4(x, xw, p->weights + c * n, n, acc);
#if EDGEDIGIT_USE_DSP
            if (p->fast_requantize) {
                for (k = 0; k < 4; ++k) {
                    const int32_t right = -p->shift[c + k];
                    out[c + k] = clamp8(rounding_shift(smmulr(acc[k] << 1, p->multiplier[c + k]), (int32_t)1 << (right - 1),
                                                       right) + p->output_offset, p->act_min, p->act_max);
                }
                continue;
            }
#endif
            for (k = 0; k < 4; ++k) {
                out[c + k] = requantize(acc[k], EDGEDIGIT_ROM_I32(&p->multiplier[c + k]),
                                        EDGEDIGIT_ROM_I32(&p->shift[c + k]), p->output_offset, p->act_min, p->act_max);
            }
        }
        for (; c < p->out_depth; ++c) {
            const int32_t acc = dot1(x, p->weights + c * n, n, EDGEDIGIT_ROM_I32(&p->bias[c]));
            out[c] = requantize(acc, EDGEDIGIT_ROM_I32(&p->multiplier[c]), EDGEDIGIT_ROM_I32(&p->shift[c]),
                                p->output_offset, p->act_min, p->act_max);
        }
    }
}

void edgedigit_fully_connected(const edgedigit_fc_t *p, const int8_t *input, int8_t *output)
{
#if EDGEDIGIT_USE_DSP
    uint32_t xw[2 * (p->in_depth >> 2) + 1]; /* the input widened once (dot4) */
    fully_connected(p, input, output, xw);
#else
    fully_connected(p, input, output, NULL);
#endif
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

/* CONV_2D. The input offset is folded into the bias (bias[oc] = bias + input_offset * sum of the channel's
 * weights) and a tap outside the image reads the input zero point (-input_offset): it then adds
 * (zp + input_offset) * w = 0 to TFLM's sum, which skips it, so the int32 sums are TFLM's exactly.
 *
 * Weight layout (edgedigit/codegen/native/ops.py pack_rows): the k_h*k_w*in_c taps of a channel (OHWI order)
 * padded with zeros to k4 = a multiple of 4, channels padded with a zero channel to an even count; channels
 * are taken in pairs, and within a pair the weights are interleaved by groups of four taps (channel 2j
 * taps 0..3, channel 2j+1 taps 0..3, channel 2j taps 4..7, ...). */

static int32_t conv_pad_value(const edgedigit_conv_t *p)
{
    return -p->input_offset;
}

#if EDGEDIGIT_USE_DSP
/* The taps of output pixel (oy, ox) widened to int16 into slot (0 or 1) of a two-pixel patch: per group of
 * four taps, the words [pixel 0: taps 0,2 | taps 1,3 | pixel 1: taps 0,2 | taps 1,3] (SXTB16 order). */
static void conv_patch(const edgedigit_conv_t *p, const int8_t *in, int32_t oy, int32_t ox, uint32_t *patch, int slot,
                       int8_t *taps)
{
    const int32_t in_c = p->in_c;
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    const int32_t x0 = ox * p->stride_w - p->pad_w;
    const int32_t pad = conv_pad_value(p);
    uint32_t *dst = patch + 2 * slot;
    int32_t fy, fx, c;
    if ((in_c & 3) == 0) {
        const uint32_t pad4 = (uint32_t)(pad & 0xFF) * 0x01010101u;
        const uint32_t pad_even = (uint32_t)__sxtb16(pad4);
        for (fy = 0; fy < p->k_h; ++fy) {
            const int32_t iy = y0 + fy * p->dil_h;
            for (fx = 0; fx < p->k_w; ++fx) {
                const int32_t ix = x0 + fx * p->dil_w;
                if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                    for (c = 0; c < in_c; c += 4) {
                        dst[0] = pad_even;
                        dst[1] = pad_even;
                        dst += 4;
                    }
                } else {
                    const int8_t *src = in + (iy * p->in_w + ix) * in_c;
                    for (c = 0; c < in_c; c += 4) {
                        const uint32_t v = load4(src + c);
                        dst[0] = (uint32_t)__sxtb16(v);
                        dst[1] = (uint32_t)sxtb16_ror8(v);
                        dst += 4;
                    }
                }
            }
        }
    } else {
        /* taps gathered as int8 (zero beyond the last), then widened four at a time */
        const int32_t k = p->k_h * p->k_w * in_c;
        const int32_t row_bytes = p->k_w * in_c;
        const int x_inside = p->dil_w == 1 && x0 >= 0 && x0 + p->k_w <= p->in_w;
        int8_t *t = taps;
        int32_t i;
        for (fy = 0; fy < p->k_h; ++fy) {
            const int32_t iy = y0 + fy * p->dil_h;
            if (iy < 0 || iy >= p->in_h) {
                for (i = 0; i < row_bytes; ++i) {
                    t[i] = (int8_t)pad;
                }
            } else if (x_inside) {
                const int8_t *src = in + (iy * p->in_w + x0) * in_c;
                for (i = 0; i < row_bytes; ++i) {
                    t[i] = src[i];
                }
            } else {
                for (fx = 0; fx < p->k_w; ++fx) {
                    const int32_t ix = x0 + fx * p->dil_w;
                    const int inside = ix >= 0 && ix < p->in_w;
                    const int8_t *src = in + (iy * p->in_w + (inside ? ix : 0)) * in_c;
                    for (c = 0; c < in_c; ++c) {
                        t[fx * in_c + c] = inside ? src[c] : (int8_t)pad;
                    }
                }
            }
            t += row_bytes;
        }
        t[0] = t[1] = t[2] = 0;
        for (i = 0; i < k; i += 4) {
            const uint32_t v = load4(taps + i);
            dst[0] = (uint32_t)__sxtb16(v);
            dst[1] = (uint32_t)sxtb16_ror8(v);
            dst += 4;
        }
    }
}

/* Two channels of two pixels: the sums of the interleaved weight pair w (groups of 4 taps, 8 bytes, word
 * aligned) with the patch x (groups of 4 words, see conv_patch). Per group: two LDM, four SXTB16 and eight
 * SMLAD for 16 multiply-accumulates. acc = {pixel 0 channel 0, pixel 1 channel 0, pixel 0 channel 1,
 * pixel 1 channel 1}. */
static void conv_2x2(const uint32_t *x, const int8_t *w, int32_t groups, int32_t acc[4])
{
    register const uint32_t *px __asm__("r12") = x;
    register const int8_t *pw __asm__("lr") = w;
    register int32_t a0 __asm__("r8") = acc[0];
    register int32_t a1 __asm__("r9") = acc[1];
    register int32_t a2 __asm__("r10") = acc[2];
    register int32_t a3 __asm__("r11") = acc[3];
    EDGEDIGIT_LOOP_END(x + 4 * groups);
#define EDGEDIGIT_CONV_GROUP                                                                                       \
    "ldm %[px]!, {r0, r1, r2, r3}\n\t"                                                                             \
    "ldm %[pw]!, {r4, r5}\n\t"                                                                                     \
    "sxtb16 r6, r4\n\t"                                                                                            \
    "sxtb16 r4, r4, ror #8\n\t"                                                                                    \
    "smlad %[a0], r6, r0, %[a0]\n\t"                                                                               \
    "smlad %[a0], r4, r1, %[a0]\n\t"                                                                               \
    "smlad %[a1], r6, r2, %[a1]\n\t"                                                                               \
    "smlad %[a1], r4, r3, %[a1]\n\t"                                                                               \
    "sxtb16 r6, r5\n\t"                                                                                            \
    "sxtb16 r5, r5, ror #8\n\t"                                                                                    \
    "smlad %[a2], r6, r0, %[a2]\n\t"                                                                               \
    "smlad %[a2], r5, r1, %[a2]\n\t"                                                                               \
    "smlad %[a3], r6, r2, %[a3]\n\t"                                                                               \
    "smlad %[a3], r5, r3, %[a3]\n\t"
    if (groups & 1) {
        __asm__ volatile(EDGEDIGIT_CONV_GROUP
                         : [px] "+r"(px), [pw] "+r"(pw), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3)
                         :
                         : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "memory");
    }
    if (groups > 1) { /* two groups per turn */
        __asm__ volatile("1:\n\t" EDGEDIGIT_CONV_GROUP EDGEDIGIT_CONV_GROUP
                         EDGEDIGIT_CMP_END
                         "bne 1b\n\t"
                         : [px] "+r"(px), [pw] "+r"(pw), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3)
                         : [end] EDGEDIGIT_END_OPERAND(end)
                         : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "cc", "memory");
    }
#undef EDGEDIGIT_CONV_GROUP
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* The requantization of the convolution outputs: requantize() without the saturation case of
 * SaturatingRoundingDoublingHighMul, which needs multiplier == INT32_MIN (QuantizeMultiplier never makes
 * one: its multipliers are below 2^31). */
__attribute__((noinline)) static int8_t conv_requantize(int32_t acc, int32_t multiplier, int32_t shift,
                                                        int32_t offset, int32_t lo, int32_t hi)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int64_t ab = (int64_t)(int32_t)((uint32_t)acc << left) * multiplier;
    const int32_t x = (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
    const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
    const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)x >> 31);
    int32_t v = (x >> right) + ((x & mask) > threshold ? 1 : 0) + offset;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (int8_t)v;
}

__attribute__((noinline)) static void conv2d_dsp(const edgedigit_conv_t *p, const int8_t *input, int8_t *output,
                                                 uint32_t *patch, int8_t *taps, int32_t *rq)
{
    const int32_t out_w = p->out_w, out_c = p->out_c;
    const int32_t pixels = p->out_h * out_w;
    const int32_t k4 = (p->k_h * p->k_w * p->in_c + 3) & ~3;
    const int32_t offset = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int fast = p->fast_requantize;
    const int sat8 = lo == -128 && hi == 127;
    int32_t b, px, oc;
    for (oc = 0; oc < out_c && fast; ++oc) { /* the fast requantization's right shifts and rounding halves */
        rq[2 * oc] = -p->shift[oc];
        rq[2 * oc + 1] = (int32_t)1 << (rq[2 * oc] - 1);
    }
    rq[2 * out_c] = rq[2 * out_c + 1] = 0; /* read (unused) after an odd last channel */
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * p->in_h * p->in_w * p->in_c;
        int8_t *out = output + b * pixels * out_c;
        for (px = 0; px < pixels; px += 2) {
            const int two = px + 1 < pixels;
            int8_t *out0 = out + px * out_c;
            int8_t *out1 = out0 + out_c;
            conv_patch(p, in, px / out_w, px % out_w, patch, 0, taps);
            if (two) {
                conv_patch(p, in, (px + 1) / out_w, (px + 1) % out_w, patch, 1, taps);
            }
            for (oc = 0; oc < out_c; oc += 2) {
                const int32_t *bias = p->bias + oc, *mult = p->multiplier + oc, *shift = p->shift + oc;
                const int pair = oc + 1 < out_c;
                int32_t acc[4];
                acc[0] = acc[1] = bias[0];
                acc[2] = acc[3] = pair ? bias[1] : 0;
                conv_2x2(patch, p->weights + oc * k4, k4 >> 2, acc);
                if (fast) {
                    const int32_t *q = rq + 2 * oc; /* right shift, rounding half of channel oc, then oc + 1 */
                    const int32_t m0 = mult[0], r0 = q[0], c0 = q[1];
                    if (sat8) { /* act range -128..127: one SSAT */
                        out0[oc] = (int8_t)__ssat(rounding_shift(smmulr(acc[0] << 1, m0), c0, r0) + offset, 8);
                        if (two) {
                            out1[oc] = (int8_t)__ssat(rounding_shift(smmulr(acc[1] << 1, m0), c0, r0) + offset, 8);
                        }
                        if (pair) {
                            const int32_t m1 = mult[1], r1 = q[2], c1 = q[3];
                            out0[oc + 1] = (int8_t)__ssat(rounding_shift(smmulr(acc[2] << 1, m1), c1, r1) + offset, 8);
                            if (two) {
                                out1[oc + 1] =
                                    (int8_t)__ssat(rounding_shift(smmulr(acc[3] << 1, m1), c1, r1) + offset, 8);
                            }
                        }
                        continue;
                    }
                    out0[oc] = clamp8(rounding_shift(smmulr(acc[0] << 1, m0), c0, r0) + offset, lo, hi);
                    if (two) {
                        out1[oc] = clamp8(rounding_shift(smmulr(acc[1] << 1, m0), c0, r0) + offset, lo, hi);
                    }
                    if (pair) {
                        const int32_t m1 = mult[1], r1 = q[2], c1 = q[3];
                        out0[oc + 1] = clamp8(rounding_shift(smmulr(acc[2] << 1, m1), c1, r1) + offset, lo, hi);
                        if (two) {
                            out1[oc + 1] = clamp8(rounding_shift(smmulr(acc[3] << 1, m1), c1, r1) + offset, lo, hi);
                        }
                    }
                    continue;
                }
                {
                    const int32_t m0 = mult[0], s0 = shift[0];
                    out0[oc] = conv_requantize(acc[0], m0, s0, offset, lo, hi);
                    if (two) {
                        out1[oc] = conv_requantize(acc[1], m0, s0, offset, lo, hi);
                    }
                }
                if (pair) {
                    const int32_t m1 = mult[1], s1 = shift[1];
                    out0[oc + 1] = conv_requantize(acc[2], m1, s1, offset, lo, hi);
                    if (two) {
                        out1[oc + 1] = conv_requantize(acc[3], m1, s1, offset, lo, hi);
                    }
                }
            }
        }
    }
}

void edgedigit_conv2d(const edgedigit_conv_t *p, const int8_t *input, int8_t *output)
{
    const int32_t k4 = (p->k_h * p->k_w * p->in_c + 3) & ~3;
    uint32_t patch[k4];                      /* two pixels' taps widened to int16 */
    uint32_t taps[(p->in_c & 3) ? k4 / 4 + 1 : 1]; /* one pixel's taps as int8, 3 zeros after (in_c % 4 != 0) */
    int32_t rq[2 * p->out_c + 2];            /* per channel: right shift, rounding half (fast requantization) */
    conv2d_dsp(p, input, output, patch, (int8_t *)taps, rq);
}
#else
/* Portable C: the same folded bias and zero-point padding. Per output pixel, its taps are gathered once (the
 * zero point where the window leaves the input, zeros after the last tap), then every output channel is a
 * dot product with its weights, read in the packed order: channel pair (oc / 2), groups of four taps, each
 * group holding channel oc & 1 at offset 4. */
void edgedigit_conv2d(const edgedigit_conv_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, out_h = p->out_h, out_w = p->out_w;
    const int32_t out_c = p->out_c, k_h = p->k_h, k_w = p->k_w;
    const int32_t taps_n = k_h * k_w * in_c, k4 = (taps_n + 3) & ~3;
    const int8_t pad = (int8_t)conv_pad_value(p);
    int8_t taps[k4];
    int32_t b, oy, ox, oc, fy, fx, ic, g;
    for (ic = taps_n; ic < k4; ++ic) {
        taps[ic] = 0;
    }
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * in_h * in_w * in_c;
        int8_t *out = output + b * out_h * out_w * out_c;
        for (oy = 0; oy < out_h; ++oy) {
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t y0 = oy * p->stride_h - p->pad_h;
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                int8_t *t = taps;
                for (fy = 0; fy < k_h; ++fy) {
                    const int32_t iy = y0 + p->dil_h * fy;
                    for (fx = 0; fx < k_w; ++fx) {
                        const int32_t ix = x0 + p->dil_w * fx;
                        if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                            const int8_t *px = in + (iy * in_w + ix) * in_c;
                            for (ic = 0; ic < in_c; ++ic) {
                                *t++ = px[ic];
                            }
                        } else {
                            for (ic = 0; ic < in_c; ++ic) {
                                *t++ = pad;
                            }
                        }
                    }
                }
                for (oc = 0; oc < out_c; ++oc) {
                    const int8_t *w = p->weights + (oc >> 1) * 2 * k4 + (oc & 1) * 4;
                    int32_t acc = EDGEDIGIT_ROM_I32(&p->bias[oc]);
                    for (g = 0; g < k4; g += 4, w += 8) {
                        acc += (int32_t)EDGEDIGIT_ROM_I8(&w[0]) * taps[g] + (int32_t)EDGEDIGIT_ROM_I8(&w[1]) * taps[g + 1] +
                               (int32_t)EDGEDIGIT_ROM_I8(&w[2]) * taps[g + 2] + (int32_t)EDGEDIGIT_ROM_I8(&w[3]) * taps[g + 3];
                    }
                    out[(oy * out_w + ox) * out_c + oc] =
                        requantize(acc, EDGEDIGIT_ROM_I32(&p->multiplier[oc]), EDGEDIGIT_ROM_I32(&p->shift[oc]),
                                   p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}
#endif /* EDGEDIGIT_USE_DSP */

#if EDGEDIGIT_USE_DSP
/* DEPTHWISE_CONV_2D with depth multiplier 1 and in_c % 4 == 0: four channels at a time, each tap's input
 * and weight words widened by SXTB16 (lanes 0, 2 and, rotated, 1, 3), the input offset added to the lanes
 * with SADD16 (|x + offset| <= 255 fits int16), one SMLABB/SMLATT per channel. Taps outside the image are
 * skipped as in TFLM; the int32 sums are TFLM's. */
static void depthwise_dsp(const edgedigit_conv_t *p, const int8_t *input, int8_t *output, int32_t *shifts)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, ch = p->in_c, out_h = p->out_h, out_w = p->out_w;
    const int32_t k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int16x2_t off2 = (int16x2_t)((uint32_t)(p->input_offset & 0xFFFF) * 0x00010001u);
    const int32_t offset = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int fast = p->fast_requantize;
    const int32_t x_step = dil_w * ch, row_step = dil_h * in_w * ch, wrow_step = k_w * ch;
    const int32_t *const mult = p->multiplier;
    const int32_t *const right = shifts, *const half = shifts + ch;
    int32_t b, oy, ox, c, fy, fx;
    for (c = 0; c < ch && fast; ++c) { /* the fast requantization's right shifts and rounding halves */
        shifts[c] = -p->shift[c];
        shifts[ch + c] = (int32_t)1 << (shifts[c] - 1);
    }
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * in_h * in_w * ch;
        int8_t *out = output + b * out_h * out_w * ch;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            int32_t fy0, fy1;
            tap_range(y0, dil_h, p->k_h, in_h, &fy0, &fy1);
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                int32_t fx0, fx1;
                tap_range(x0, dil_w, k_w, in_w, &fx0, &fx1);
                const int8_t *px0 = in + ((y0 + dil_h * fy0) * in_w + x0 + dil_w * fx0) * ch;
                const int8_t *pw0 = p->weights + (fy0 * k_w + fx0) * ch;
                const int32_t taps_w = fx1 - fx0;
                for (c = 0; c < ch; c += 4) {
                    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                    if (p->bias != NULL) {
                        a0 = p->bias[c];
                        a1 = p->bias[c + 1];
                        a2 = p->bias[c + 2];
                        a3 = p->bias[c + 3];
                    }
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int8_t *px = px0 + (fy - fy0) * row_step + c;
                        const int8_t *pw = pw0 + (fy - fy0) * wrow_step + c;
                        for (fx = 0; fx < taps_w; ++fx) {
                            const uint32_t xv = load4(px), wv = load4(pw);
                            const int16x2_t x02 = __sadd16(__sxtb16(xv), off2);
                            const int16x2_t x13 = __sadd16(sxtb16_ror8(xv), off2);
                            const int16x2_t w02 = __sxtb16(wv), w13 = sxtb16_ror8(wv);
                            a0 = __smlabb(x02, w02, a0);
                            a2 = __smlatt(x02, w02, a2);
                            a1 = __smlabb(x13, w13, a1);
                            a3 = __smlatt(x13, w13, a3);
                            px += x_step;
                            pw += ch;
                        }
                    }
                    if (fast) {
                        out[0] = clamp8(rounding_shift(smmulr(a0 << 1, mult[c]), half[c], right[c]) + offset, lo, hi);
                        out[1] = clamp8(rounding_shift(smmulr(a1 << 1, mult[c + 1]), half[c + 1], right[c + 1]) + offset,
                                        lo, hi);
                        out[2] = clamp8(rounding_shift(smmulr(a2 << 1, mult[c + 2]), half[c + 2], right[c + 2]) + offset,
                                        lo, hi);
                        out[3] = clamp8(rounding_shift(smmulr(a3 << 1, mult[c + 3]), half[c + 3], right[c + 3]) + offset,
                                        lo, hi);
                    } else {
                        out[0] = conv_requantize(a0, mult[c], p->shift[c], offset, lo, hi);
                        out[1] = conv_requantize(a1, mult[c + 1], p->shift[c + 1], offset, lo, hi);
                        out[2] = conv_requantize(a2, mult[c + 2], p->shift[c + 2], offset, lo, hi);
                        out[3] = conv_requantize(a3, mult[c + 3], p->shift[c + 3], offset, lo, hi);
                    }
                    out += 4;
                }
            }
        }
    }
}
#endif /* EDGEDIGIT_USE_DSP */

#if EDGEDIGIT_USE_DSP
/* DEPTHWISE_CONV_2D 3x3, depth multiplier 1, no dilation, stride 1 or 2 (both directions): one channel at a
 * time (channel-major, TinyEngine's order), so the channel's nine weights, bias and requantization constants
 * stay in registers. The channel's input rows are gathered as int16 with the input offset added, in a ring of
 * three rows padded with zeros where the window leaves the image: (x + input_offset) is then 0 there, which
 * adds nothing, as TFLM skipping the tap. A row of taps is one SMLAD over two taps (the weights packed as
 * [w0 | w1]) plus one SMLABB (w2), for two output pixels per pass; the int32 sums are TFLM's. */
static int32_t load_i16x2(const int16_t *p)
{
    int32_t v;
    __builtin_memcpy(&v, p, sizeof v); /* one LDR (unaligned allowed on the Cortex-M4) */
    return v;
}

#define EDGEDIGIT_DW3_LINE_BYTES 2048

/* The geometry of depthwise3x3_dsp: its lines run along the image's longer output side (x, or y when the
 * output is taller than wide), so that the per-line work is spread over more pixels. "inner" is along a line,
 * "outer" across lines; steps are in bytes of the HWC input, output, and HWC weights. */
typedef struct {
    int32_t in_inner, in_outer;       /* input pixels along and across lines */
    int32_t in_step, in_line;         /* bytes from an input pixel to the next along a line, and to the next line */
    int32_t pad_inner, pad_outer;
    int32_t out_inner, out_outer;
    int32_t out_step, out_line;
    int32_t w_step, w_line;           /* weight bytes from tap to tap along a line, and across lines */
} dw3_geometry_t;

/* Input lines iy0 .. iy0 + n - 1 of a channel (in points at its first byte) into dst, one every row_len
 * halfwords; column j is input pixel j - pad_inner along the line, stored as int16 x + offset. Only the columns
 * inside the image are written (the others are zeroed once by the caller), zeros for a line outside the image. */
static void dw3_lines(const int8_t *in, int32_t iy0, int32_t n, const dw3_geometry_t *g, int32_t off, int16_t *dst,
                      int32_t row_len, int32_t first, int32_t end)
{
    const int32_t step = g->in_step;
    int32_t l, j;
    for (l = 0; l < n; ++l, dst += row_len) {
        const int32_t iy = iy0 + l;
        if (iy < 0 || iy >= g->in_outer) {
            for (j = first; j < end; ++j) {
                dst[j] = 0;
            }
        } else {
            const int8_t *src = in + iy * g->in_line + (first - g->pad_inner) * step;
            for (j = first; j < end; ++j) {
                dst[j] = (int16_t)(*src + off);
                src += step;
            }
        }
    }
}

/* The sums of n output lines of one channel from its input lines (buf, one every row_len halfwords): w[2k] =
 * [w(k,0) | w(k,1)], w[2k + 1] = w(k,2) in the low half, for the k-th line of taps. */
static void dw3_sums(const int16_t *buf, int32_t row_len, int32_t n, const int32_t *w, int32_t bias, int32_t out_w,
                     int stride, int32_t *acc)
{
    const int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5];
    int32_t l;
    for (l = 0; l < n; ++l, acc += out_w) {
        const int16_t *r0 = buf + l * stride * row_len, *r1 = r0 + row_len, *r2 = r1 + row_len;
        int32_t ox = 0;
        if (stride == 1) {
            for (; ox + 2 <= out_w; ox += 2, r0 += 2, r1 += 2, r2 += 2) {
                int32_t a0 = bias, a1 = bias, c;
                c = load_i16x2(r0 + 2);
                a0 = __smlad(load_i16x2(r0), w0, a0);
                a1 = __smlad(load_i16x2(r0 + 1), w0, a1);
                a0 = __smlabb(c, w1, a0);
                a1 = __smlatb(c, w1, a1);
                c = load_i16x2(r1 + 2);
                a0 = __smlad(load_i16x2(r1), w2, a0);
                a1 = __smlad(load_i16x2(r1 + 1), w2, a1);
                a0 = __smlabb(c, w3, a0);
                a1 = __smlatb(c, w3, a1);
                c = load_i16x2(r2 + 2);
                a0 = __smlad(load_i16x2(r2), w4, a0);
                a1 = __smlad(load_i16x2(r2 + 1), w4, a1);
                a0 = __smlabb(c, w5, a0);
                a1 = __smlatb(c, w5, a1);
                acc[ox] = a0;
                acc[ox + 1] = a1;
            }
        } else {
            for (; ox + 2 <= out_w; ox += 2, r0 += 4, r1 += 4, r2 += 4) {
                int32_t a0 = bias, a1 = bias, b;
                b = load_i16x2(r0 + 2);
                a0 = __smlad(load_i16x2(r0), w0, a0);
                a1 = __smlad(b, w0, a1);
                a0 = __smlabb(b, w1, a0);
                a1 = __smlabb(load_i16x2(r0 + 4), w1, a1);
                b = load_i16x2(r1 + 2);
                a0 = __smlad(load_i16x2(r1), w2, a0);
                a1 = __smlad(b, w2, a1);
                a0 = __smlabb(b, w3, a0);
                a1 = __smlabb(load_i16x2(r1 + 4), w3, a1);
                b = load_i16x2(r2 + 2);
                a0 = __smlad(load_i16x2(r2), w4, a0);
                a1 = __smlad(b, w4, a1);
                a0 = __smlabb(b, w5, a0);
                a1 = __smlabb(load_i16x2(r2 + 4), w5, a1);
                acc[ox] = a0;
                acc[ox + 1] = a1;
            }
        }
        if (ox < out_w) { /* the last pixel of an odd row */
            int32_t a0 = bias;
            a0 = __smlad(load_i16x2(r0), w0, a0);
            a0 = __smlabb(load_i16x2(r0 + 2), w1, a0);
            a0 = __smlad(load_i16x2(r1), w2, a0);
            a0 = __smlabb(load_i16x2(r1 + 2), w3, a0);
            a0 = __smlad(load_i16x2(r2), w4, a0);
            a0 = __smlabb(load_i16x2(r2 + 2), w5, a0);
            acc[ox] = a0;
        }
    }
}

/* rows: (chunk - 1) * stride + 3 lines of row_len halfwords; acc: chunk * out_inner sums. The output lines are
 * taken chunk at a time (all of them when the image is small: one call of each helper per channel). */
__attribute__((noinline)) static void depthwise3x3_dsp(const edgedigit_conv_t *p, const dw3_geometry_t *g,
                                                       const int8_t *input, int8_t *output, int16_t *rows,
                                                       int32_t row_len, int32_t chunk, int32_t *acc)
{
    const int32_t ch = p->in_c, out_inner = g->out_inner, stride = p->stride_h;
    const int32_t offset = p->output_offset, lo = p->act_min, hi = p->act_max, in_off = p->input_offset;
    const int32_t cols = (out_inner - 1) * stride + 3;
    const int32_t first = g->pad_inner < cols ? g->pad_inner : cols; /* the columns inside the image */
    const int32_t end = g->pad_inner + g->in_inner < cols ? g->pad_inner + g->in_inner : cols;
    const int32_t out_step = g->out_step;
    const int saturate8 = lo == -128 && hi == 127;
    int32_t b, c, oy, ox, j, l;
    for (j = 0; j < ((chunk - 1) * stride + 3) * row_len; ++j) {
        rows[j] = 0;
    }
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * p->in_h * p->in_w * ch;
        int8_t *out_b = output + b * p->out_h * p->out_w * ch;
        for (c = 0; c < ch; ++c) {
            const int8_t *wc = p->weights + c;
            const int32_t bias = p->bias != NULL ? p->bias[c] : 0;
            const int32_t mult = p->multiplier[c], shift = p->shift[c];
            const int32_t right = -shift, half = p->fast_requantize ? (int32_t)1 << (right - 1) : 0;
            int32_t w[6];
            for (j = 0; j < 3; ++j) {
                const int8_t *wl = wc + j * g->w_line;
                w[2 * j] = (int32_t)(((uint32_t)(uint16_t)wl[0]) | ((uint32_t)wl[g->w_step] << 16));
                w[2 * j + 1] = wl[2 * g->w_step];
            }
            for (oy = 0; oy < g->out_outer; oy += chunk) {
                const int32_t n = g->out_outer - oy < chunk ? g->out_outer - oy : chunk;
                const int32_t *a = acc;
                dw3_lines(in_b + c, oy * stride - g->pad_outer, (n - 1) * stride + 3, g, in_off, rows, row_len, first,
                          end);
                dw3_sums(rows, row_len, n, w, bias, out_inner, stride, acc);
                for (l = 0; l < n; ++l) {
                    int8_t *out = out_b + c + (oy + l) * g->out_line;
                    if (p->fast_requantize && saturate8) {
                        for (ox = 0; ox < out_inner; ++ox) {
                            *out = (int8_t)__ssat(rounding_shift(smmulr(a[ox] << 1, mult), half, right) + offset, 8);
                            out += out_step;
                        }
                    } else if (p->fast_requantize) {
                        for (ox = 0; ox < out_inner; ++ox) {
                            *out = clamp8(rounding_shift(smmulr(a[ox] << 1, mult), half, right) + offset, lo, hi);
                            out += out_step;
                        }
                    } else {
                        for (ox = 0; ox < out_inner; ++ox) {
                            *out = conv_requantize(a[ox], mult, shift, offset, lo, hi);
                            out += out_step;
                        }
                    }
                    a += out_inner;
                }
            }
        }
    }
}
#endif /* EDGEDIGIT_USE_DSP */

void edgedigit_depthwise_conv2d(const edgedigit_conv_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, out_h = p->out_h, out_w = p->out_w;
    const int32_t out_c = p->out_c, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t depth_multiplier = p->depth_multiplier, input_offset = p->input_offset;
    const int8_t *const weights = p->weights;
    int32_t b, oy, ox, ic, m, fy, fx;
#if EDGEDIGIT_USE_DSP
    if (depth_multiplier == 1 && p->k_h == 3 && k_w == 3 && dil_h == 1 && dil_w == 1 && p->stride_h == p->stride_w &&
        (p->stride_h == 1 || p->stride_h == 2)) {
        const int tall = p->out_h > out_w; /* lines along y */
        const dw3_geometry_t g = {
            .in_inner = tall ? in_h : in_w, .in_outer = tall ? in_w : in_h,
            .in_step = tall ? in_w * in_c : in_c, .in_line = tall ? in_c : in_w * in_c,
            .pad_inner = tall ? p->pad_h : p->pad_w, .pad_outer = tall ? p->pad_w : p->pad_h,
            .out_inner = tall ? p->out_h : out_w, .out_outer = tall ? out_w : p->out_h,
            .out_step = tall ? out_w * out_c : out_c, .out_line = tall ? out_c : out_w * out_c,
            .w_step = tall ? 3 * out_c : out_c, .w_line = tall ? out_c : 3 * out_c,
        };
        const int32_t stride = p->stride_h;
        const int32_t row_len = ((g.out_inner - 1) * stride + 3 + 3) & ~1; /* + two spare columns, even */
        /* output lines per chunk: as many as 2 KiB of input lines hold (at least one, at most all) */
        const int32_t fit = ((EDGEDIGIT_DW3_LINE_BYTES / 2) / row_len - 3) / stride + 1;
        const int32_t chunk = fit < 1 ? 1 : fit > g.out_outer ? g.out_outer : fit;
        int16_t rows[((chunk - 1) * stride + 3) * row_len] __attribute__((aligned(4))); /* the input lines */
        int32_t acc[chunk * g.out_inner];                                                /* their output sums */
        depthwise3x3_dsp(p, &g, input, output, rows, row_len, chunk, acc);
        return;
    }
    if (depth_multiplier == 1 && (in_c & 3) == 0) {
        int32_t shifts[2 * in_c]; /* per channel: right shift, rounding half (fast requantization) */
        depthwise_dsp(p, input, output, shifts);
        return;
    }
#endif
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
                                acc += (int32_t)EDGEDIGIT_ROM_I8(&wrow[fx * out_c]) *
                                       ((int32_t)row[(x0 + dil_w * fx) * in_c] + input_offset);
                            }
                        }
                        if (p->bias != NULL) {
                            acc += EDGEDIGIT_ROM_I32(&p->bias[oc]);
                        }
                        out[(oy * out_w + ox) * out_c + oc] = requantize(
                            acc, EDGEDIGIT_ROM_I32(&p->multiplier[oc]), EDGEDIGIT_ROM_I32(&p->shift[oc]),
                            p->output_offset, p->act_min, p->act_max);
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

#if EDGEDIGIT_USE_DSP
/* Lane-wise max of four int8 (SSUB8 sets the GE flags where a >= b, SEL takes those lanes of a). */
static uint32_t max4(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}

static uint32_t min4(uint32_t a, uint32_t b)
{
    return max4(a, b) ^ a ^ b;
}

/* Four channels at a time (channels % 4 == 0): the same maxima as the loop below. */
static void max_pool_dsp(const edgedigit_pool_t *p, const int8_t *input, int8_t *output)
{
    const int32_t ch = p->channels;
    const uint32_t lo4 = (uint32_t)(p->act_min & 0xFF) * 0x01010101u;
    const uint32_t hi4 = (uint32_t)(p->act_max & 0xFF) * 0x01010101u;
    int32_t b, oy, ox, c, fy, fx;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * p->in_h * p->in_w * ch;
        int8_t *out = output + b * p->out_h * p->out_w * ch;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = max_i32(0, -y0);
            const int32_t fy1 = min_i32(p->f_h, p->in_h - y0);
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = max_i32(0, -x0);
                const int32_t fx1 = min_i32(p->f_w, p->in_w - x0);
                for (c = 0; c < ch; c += 4) {
                    uint32_t v = lo4; /* max(-128, window..., act_min) */
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int8_t *row = in + ((y0 + fy) * p->in_w + x0) * ch + c;
                        for (fx = fx0; fx < fx1; ++fx) {
                            v = max4(load4(row + fx * ch), v);
                        }
                    }
                    v = min4(v, hi4);
                    __builtin_memcpy(out, &v, sizeof v);
                    out += 4;
                }
            }
        }
    }
}
#endif /* EDGEDIGIT_USE_DSP */

void edgedigit_max_pool(const edgedigit_pool_t *p, const int8_t *input, int8_t *output)
{
#if EDGEDIGIT_USE_DSP
    if ((p->channels & 3) == 0) {
        max_pool_dsp(p, input, output);
        return;
    }
#endif
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
EDGEDIGIT_SMALL static int32_t exp_on_negative_values_q5(int32_t a)
{
    static const int32_t multipliers[7] EDGEDIGIT_ROM = {1672461947, 1302514674, 790015084, 290630308, 39332535,
                                                         720401, 242};
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
            result = edgedigit_srdhm(result, EDGEDIGIT_ROM_I32(&multipliers[k]));
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

#define SOFTMAX_CACHED 16

EDGEDIGIT_SMALL void edgedigit_softmax(const edgedigit_softmax_t *p, const int8_t *input, int8_t *output)
{
    int32_t i, c;
    for (i = 0; i < p->outer; ++i) {
        const int8_t *in = input + i * p->depth;
        int8_t *out = output + i * p->depth;
        int32_t max_in_row = -128;
        int32_t sum_of_exps = 0; /* Q12.19 */
        int headroom_plus_one, num_bits_over_unit, exponent;
        int32_t shifted_scale;
        int32_t exps[SOFTMAX_CACHED]; /* the first exps, computed once for both passes */
        for (c = 0; c < p->depth; ++c) {
            max_in_row = max_i32(max_in_row, in[c]);
        }
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)in[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t e = softmax_exp(p, diff);
                if (c < SOFTMAX_CACHED) {
                    exps[c] = e;
                }
                sum_of_exps += edgedigit_rounding_divide_by_pot(e, 12); /* Rescale<12> */
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
                const int32_t e = c < SOFTMAX_CACHED ? exps[c] : softmax_exp(p, diff);
                v = edgedigit_rounding_divide_by_pot(edgedigit_srdhm(shifted_scale, e), exponent) - 128;
                v = min_i32(max_i32(v, -128), 127);
            }
            out[c] = (int8_t)v;
        }
    }
}
