/* edgedigit: int8 reduction kernels of the native backend (MEAN). Hand-written; shipped only with the native
 * projects whose model has one of these ops.
 *
 * Plain C99, no heap. The arithmetic is that of TensorFlow Lite Micro's reduce kernel for int8 MEAN
 * (reduce_common.cc, reference_ops::QuantizedMeanOrSum): int32 sums, minus zero_point x count, requantized
 * with the input-to-output scale readapted to divide by the count (computed at code generation time).
 */
#ifndef EDGEDIGIT_KERNELS_REDUCE_H
#define EDGEDIGIT_KERNELS_REDUCE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEDIGIT_REDUCE_RANK 6

/* MEAN over constant axes. The kept loops enumerate the output elements in order; the reduced loops the
 * `count` input elements of each; both outermost first, in elements, unused loops of size 1. */
typedef struct {
    int32_t outputs;
    int32_t count;
    int32_t kept_dims[EDGEDIGIT_REDUCE_RANK];
    int32_t kept_strides[EDGEDIGIT_REDUCE_RANK];
    int32_t reduced_dims[EDGEDIGIT_REDUCE_RANK];
    int32_t reduced_strides[EDGEDIGIT_REDUCE_RANK];
    int32_t sum_offset;     /* -input zero point x count (int32, as TFLM) */
    int32_t multiplier;     /* readapted for the count */
    int32_t shift;
    int32_t output_offset;  /* output zero point */
} edgedigit_mean_t;

void edgedigit_mean(const edgedigit_mean_t *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif
#endif /* EDGEDIGIT_KERNELS_REDUCE_H */
