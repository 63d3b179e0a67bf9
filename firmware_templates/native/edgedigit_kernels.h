/* edgedigit: int8 kernels of the native backend. Hand-written; shipped with every native firmware project.
 *
 * C99, no heap, no interpreter. On ARMv7E-M (Cortex-M4/M7: __ARM_FEATURE_DSP) FULLY_CONNECTED, CONV_2D,
 * DEPTHWISE_CONV_2D and MAX_POOL_2D take SMLAD/SXTB16/SEL paths (a few loops in inline assembler); every
 * other CPU gets portable C over the same data. The arithmetic is that of TensorFlow Lite Micro's reference kernels
 * (kernels/internal/reference/integer_ops and reference/softmax.h) with the classic double-rounding
 * requantization (gemmlowp SaturatingRoundingDoublingHighMul then RoundingDivideByPOT), so the outputs are
 * identical, element for element, to TFLM's. Multipliers, shifts, activation ranges, paddings and folded
 * biases are computed on the host at code generation time, exactly like TFLM's Prepare functions.
 *
 * The constant arrays the structs below point to (weights, biases, multipliers, shifts) are EDGEDIGIT_ROM
 * and the kernels read them through EDGEDIGIT_ROM_* (edgedigit_rom.h): on AVR they stay in flash
 * (pgm_read_*), everywhere else the reads are plain loads.
 */
#ifndef EDGEDIGIT_KERNELS_H
#define EDGEDIGIT_KERNELS_H

#include <stdint.h>

#include "edgedigit_rom.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model's constant arrays are word aligned (the Cortex-M4 kernels read weights with LDM). */
#if defined(__GNUC__)
#define EDGEDIGIT_ALIGNED __attribute__((aligned(4)))
#else
#define EDGEDIGIT_ALIGNED
#endif

/* gemmlowp::SaturatingRoundingDoublingHighMul for int32. */
int32_t edgedigit_srdhm(int32_t a, int32_t b);
/* gemmlowp::RoundingDivideByPOT: rounding arithmetic right shift, 0 <= exponent <= 31. */
int32_t edgedigit_rounding_divide_by_pot(int32_t x, int exponent);
/* tflite::MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2^shift / 2^31. */
int32_t edgedigit_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift);

/* FULLY_CONNECTED. bias[c] already holds bias + input_offset * sum(weights[c, :]) (folded at codegen),
 * so the inner loop is a pure int8 dot product; int32 sums are exact, so the result is TFLM's. */
typedef struct {
    int32_t batches;
    int32_t in_depth;
    int32_t out_depth;
    const int8_t *weights;     /* out_depth x in_depth, interleaved by blocks of 4 rows (kernels.c) */
    const int32_t *bias;       /* out_depth, folded (see above) */
    const int32_t *multiplier; /* out_depth (a per-tensor multiplier is repeated) */
    const int32_t *shift;      /* out_depth */
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t fast_requantize;   /* every |sum| < 2^30 and every shift <= -1 (see edgedigit_kernels.c) */
} edgedigit_fc_t;

void edgedigit_fully_connected(const edgedigit_fc_t *p, const int8_t *input, int8_t *output);

/* CONV_2D and DEPTHWISE_CONV_2D (NHWC, batch 1 per call of the batch loop). For CONV_2D the code generator
 * packs the weights (pairs of channels interleaved by groups of 4 taps, see edgedigit_kernels.c) and folds
 * the input offset into the bias (never NULL); a tap outside the image then reads the input zero point. */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_h, pad_w;
    int32_t depth_multiplier;  /* depthwise only (1 for CONV_2D) */
    const int8_t *weights;     /* conv: packed (see above); depthwise: k_h x k_w x out_c */
    const int32_t *bias;       /* out_c (conv: folded), or NULL (depthwise only) */
    const int32_t *multiplier; /* out_c */
    const int32_t *shift;      /* out_c */
    int32_t input_offset;      /* -input zero point */
    int32_t output_offset;     /* output zero point */
    int32_t act_min;
    int32_t act_max;
    int32_t fast_requantize;   /* CONV_2D: every |sum| < 2^30 and every shift <= -1 (see edgedigit_kernels.c) */
} edgedigit_conv_t;

void edgedigit_conv2d(const edgedigit_conv_t *p, const int8_t *input, int8_t *output);
void edgedigit_depthwise_conv2d(const edgedigit_conv_t *p, const int8_t *input, int8_t *output);

/* MAX_POOL_2D and AVERAGE_POOL_2D (input and output share scale and zero point, as TFLM requires). */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t f_h, f_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t act_min;
    int32_t act_max;
} edgedigit_pool_t;

void edgedigit_max_pool(const edgedigit_pool_t *p, const int8_t *input, int8_t *output);
/* Returns 0, or -1 when a window holds no input element (TFLM fails the same way). */
int edgedigit_average_pool(const edgedigit_pool_t *p, const int8_t *input, int8_t *output);

/* SOFTMAX int8 -> int8 (output scale 1/256, zero point -128), gemmlowp fixed-point exp. */
typedef struct {
    int32_t outer;
    int32_t depth;
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} edgedigit_softmax_t;

void edgedigit_softmax(const edgedigit_softmax_t *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif
#endif /* EDGEDIGIT_KERNELS_H */
