/* A stand-in model runner for the protocol tests (implements edgedigit_model.h; no real model).
 *
 * Input: a 784-byte "image". raw[k] = ((sum of bytes) * (k + 1) + k) mod 256 - 128, the prediction is the
 * first index of the maximum, so the tests can compute every expected output in Python. An input whose
 * first two bytes are 255, 1 makes invoke fail with -3 (the error path). Its "model data" is two regions
 * (a RAM table and a string), so the boot CRC can be checked against Python's zlib.crc32.
 */
#include "edgedigit_model.h"

static const edgedigit_model_info_t k_info = {
    "testrunner", "tr01", "test", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    EDGEDIGIT_IMAGE_BYTES, 10u, 1234u, 1.0f, 0, 0.5f, -128, "int8", EDGEDIGIT_INPUT_PIXELS,
    EDGEDIGIT_SCORES_DEQUANTIZED,
};

static uint8_t s_input[EDGEDIGIT_IMAGE_BYTES];
static int32_t s_raw[10];
static const uint8_t k_table[5] = {1, 2, 3, 4, 5};
static const char k_text[] = "edgedigit";

const edgedigit_model_info_t *edgedigit_model_info(void) { return &k_info; }

int edgedigit_model_init(void) { return 0; }

uint8_t *edgedigit_model_input(void) { return s_input; }

int edgedigit_model_invoke(void) {
    if (s_input[0] == 255u && s_input[1] == 1u) {
        return -3;
    }
    uint32_t sum = 0;
    for (int i = 0; i < EDGEDIGIT_IMAGE_BYTES; i++) {
        sum += s_input[i];
    }
    int best = 0;
    for (uint32_t k = 0; k < k_info.num_outputs; k++) {
        s_raw[k] = (int32_t)((sum * (k + 1u) + k) % 256u) - 128;
        if (s_raw[k] > s_raw[best]) {
            best = (int)k;
        }
    }
    return best;
}

int32_t edgedigit_model_output(uint32_t i) { return s_raw[i]; }

int edgedigit_model_region(uint32_t i, edgedigit_model_region_t *out) {
    out->in_rom = 0u;
    if (i == 0u) {
        out->data = k_table;
        out->bytes = sizeof k_table;
        return 1;
    }
    if (i == 1u) {
        out->data = k_text;
        out->bytes = sizeof k_text - 1u;
        return 1;
    }
    return 0;
}
