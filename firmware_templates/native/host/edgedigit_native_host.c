/* edgedigit: batch entry points of the native backend for the host runner (edgedigit/native.py, ctypes).
 * Hand-written; compiled only into the host shared library, never into firmware. */
#include <stdint.h>
#include <string.h>

#include "edgedigit_native_model.h"

/* Run n int8 inputs (n x EDGEDIGIT_NATIVE_INPUT_BYTES) into n int8 outputs. 0 on success, -1 on failure. */
int edgedigit_native_run_batch(const int8_t *inputs, int8_t *outputs, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        memcpy(edgedigit_native_input(), inputs + (size_t)i * EDGEDIGIT_NATIVE_INPUT_BYTES,
               EDGEDIGIT_NATIVE_INPUT_BYTES);
        if (edgedigit_native_run() != 0) {
            return -1;
        }
        memcpy(outputs + (size_t)i * EDGEDIGIT_NATIVE_OUTPUT_BYTES, edgedigit_native_output(),
               EDGEDIGIT_NATIVE_OUTPUT_BYTES);
    }
    return 0;
}

int32_t edgedigit_native_arena_bytes(void)
{
    return EDGEDIGIT_NATIVE_ARENA_BYTES;
}
