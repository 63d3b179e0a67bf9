/* edgedigit: int8 requantization kernel of the native backend (see edgedigit_kernels_quantize.h).
 * Hand-written. */
#include "edgedigit_kernels_quantize.h"

#include "edgedigit_kernels.h"

void edgedigit_requantize(const edgedigit_requantize_t *p, const int8_t *input, int8_t *output)
{
    int32_t k;
    for (k = 0; k < p->size; ++k) {
        const int32_t v = edgedigit_multiply_by_quantized_multiplier((int32_t)input[k] - p->input_zero_point,
                                                                     p->multiplier, p->shift) +
                          p->output_zero_point;
        output[k] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
}
