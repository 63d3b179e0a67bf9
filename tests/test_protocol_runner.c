/* A stand-in model runner for the protocol tests (implements edgedigit_model.h; no real model).
 *
 * raw[k] = ((sum of pixels) * (k + 1) + k) mod 256 - 128, the prediction is the first index of the
 * maximum, so the tests can compute every expected output in Python. An image whose first two pixels are
 * 255, 1 makes invoke fail with -3 (the error path).
 */
#include "edgedigit_model.h"

static const edgedigit_model_info_t k_info = {
    "testrunner", "test", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    10u, 1234u, 0.5f, -128, "int8",
};

const edgedigit_model_info_t *edgedigit_model_info(void) { return &k_info; }

int edgedigit_model_init(void) { return 0; }

int edgedigit_model_invoke(const uint8_t *pixels, int32_t *raw_out) {
    if (pixels[0] == 255u && pixels[1] == 1u) {
        return -3;
    }
    uint32_t sum = 0;
    for (int i = 0; i < EDGEDIGIT_IMAGE_BYTES; i++) {
        sum += pixels[i];
    }
    int best = 0;
    for (uint32_t k = 0; k < k_info.num_classes; k++) {
        raw_out[k] = (int32_t)((sum * (k + 1u) + k) % 256u) - 128;
        if (raw_out[k] > raw_out[best]) {
            best = (int)k;
        }
    }
    return best;
}
