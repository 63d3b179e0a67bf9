/* edgedigit: int8 elementwise kernels of the native backend (ADD, MUL). Hand-written; shipped only with the
 * native projects whose model has one of these ops.
 *
 * Plain C99, no heap. The arithmetic is that of TensorFlow Lite Micro's reference kernels
 * (reference_integer_ops::Add and Mul, double-rounding requantization), so the outputs are identical, element
 * for element, to TFLM's. Multipliers, shifts and the broadcast loop nest are computed at code generation time
 * (edgedigit/codegen/native/prepare.py), as TFLM's Prepare computes them.
 */
#ifndef EDGEDIGIT_KERNELS_ELEMENTWISE_H
#define EDGEDIGIT_KERNELS_ELEMENTWISE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEDIGIT_BROADCAST_RANK 6

/* The loop nest of a broadcasting binary op, outermost loop first. The output is written contiguously; the
 * inputs advance by their strides (in elements; 0 repeats the element: broadcasting). A loop may fuse several
 * dimensions of the tensors; unused loops have size 1. */
typedef struct {
    int32_t dims[EDGEDIGIT_BROADCAST_RANK];
    int32_t stride1[EDGEDIGIT_BROADCAST_RANK];
    int32_t stride2[EDGEDIGIT_BROADCAST_RANK];
} edgedigit_broadcast_t;

/* ADD int8 (add_common.cc): each input, offset and shifted left by left_shift (20), is rescaled to twice the
 * larger input scale; the sum is requantized to the output; then the fused activation range. */
typedef struct {
    edgedigit_broadcast_t shape;
    int32_t input1_offset;     /* -input1 zero point */
    int32_t input1_multiplier;
    int32_t input1_shift;      /* <= 0 */
    int32_t input2_offset;
    int32_t input2_multiplier;
    int32_t input2_shift;
    int32_t left_shift;
    int32_t output_offset;     /* output zero point */
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t act_min;
    int32_t act_max;
} edgedigit_add_t;

void edgedigit_add(const edgedigit_add_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);

/* MUL int8 (mul_common.cc): (x1 + input1_offset) * (x2 + input2_offset) requantized with s1 * s2 / s_out. */
typedef struct {
    edgedigit_broadcast_t shape;
    int32_t input1_offset;
    int32_t input2_offset;
    int32_t output_offset;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t act_min;
    int32_t act_max;
} edgedigit_mul_t;

void edgedigit_mul(const edgedigit_mul_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);

#ifdef __cplusplus
}
#endif
#endif /* EDGEDIGIT_KERNELS_ELEMENTWISE_H */
