/* edgedigit: int8 requantization kernel of the native backend (QUANTIZE int8 -> int8). Hand-written; shipped
 * only with the native projects whose model has this op.
 *
 * Plain C99. TensorFlow Lite Micro's reference_ops::Requantize (quantize_common.cc) for int8 -> int8:
 * (x - input zero point) times the input-to-output scale (double-rounding multiplier, computed at code
 * generation time), plus the output zero point, clamped to int8.
 */
#ifndef EDGEDIGIT_KERNELS_QUANTIZE_H
#define EDGEDIGIT_KERNELS_QUANTIZE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t multiplier;
    int32_t shift;
    int32_t output_zero_point;
} edgedigit_requantize_t;

void edgedigit_requantize(const edgedigit_requantize_t *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif
#endif /* EDGEDIGIT_KERNELS_QUANTIZE_H */
