/* edgedigit: int8 layout kernels of the native backend (PAD, CONCATENATION). Hand-written; shipped only with
 * the native projects whose model has one of these ops.
 *
 * Plain C99, no heap. They move bytes as TensorFlow Lite Micro's reference kernels do (pad.cc,
 * concatenation.cc): no arithmetic, so the outputs are TFLM's byte for byte. Shapes and offsets are computed
 * at code generation time (edgedigit/codegen/native/ops.py).
 */
#ifndef EDGEDIGIT_KERNELS_LAYOUT_H
#define EDGEDIGIT_KERNELS_LAYOUT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEDIGIT_PAD_RANK 5

/* PAD: the input copied into the output at offset `before` in each dimension, every other output byte set to
 * pad_value (the output zero point). Shapes padded at the front with 1s to EDGEDIGIT_PAD_RANK dimensions. */
typedef struct {
    int32_t in_dims[EDGEDIGIT_PAD_RANK];
    int32_t out_dims[EDGEDIGIT_PAD_RANK];
    int32_t before[EDGEDIGIT_PAD_RANK];
    int32_t pad_value;
} edgedigit_pad_t;

void edgedigit_pad(const edgedigit_pad_t *p, const int8_t *input, int8_t *output);

/* CONCATENATION: for each of `outer` slices (the dimensions before the axis), sizes[k] bytes of input k in
 * turn. Inputs and output share scale and zero point (TFLM requires it), so bytes are copied as they are. */
typedef struct {
    int32_t count;          /* number of inputs */
    int32_t outer;          /* product of the dimensions before the axis */
    const int32_t *sizes;   /* per input: its axis dimension times the product of the dimensions after it */
} edgedigit_concat_t;

void edgedigit_concatenation(const edgedigit_concat_t *p, const int8_t *const *inputs, int8_t *output);

#ifdef __cplusplus
}
#endif
#endif /* EDGEDIGIT_KERNELS_LAYOUT_H */
