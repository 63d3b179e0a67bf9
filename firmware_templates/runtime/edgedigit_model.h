/* edgedigit: the model runner interface. Hand-written; shipped with every firmware project.
 *
 * One implementation per backend (tflm: C++, native: C, linear: C). The protocol and platform layers
 * call only these functions, so the same protocol code compiles for every board and backend.
 */
#ifndef EDGEDIGIT_MODEL_H
#define EDGEDIGIT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEDIGIT_IMAGE_BYTES 784 /* 28 x 28 raw pixels, 0..255 */
#define EDGEDIGIT_MAX_CLASSES 16

typedef struct {
    const char *variant;       /* e.g. "mlp" or the .tflite's file stem */
    const char *backend;       /* "tflm", "native" or "linear" */
    const char *model_sha256;  /* sha256 of the source model file (64 hex chars) */
    uint32_t num_classes;      /* outputs per inference */
    uint32_t arena_bytes;      /* activation memory: TFLM arena or the native static plan; 0 for linear */
    float output_scale;        /* raw output -> real value: (raw - zero_point) * scale */
    int32_t output_zero_point;
    const char *output_kind;   /* "int8" (neural) or "int32" (linear scores) */
} edgedigit_model_info_t;

const edgedigit_model_info_t *edgedigit_model_info(void);

/* Prepare the runner (allocate tensors, check the model). 0 on success, a negative code otherwise. */
int edgedigit_model_init(void);

/* Run one image of raw pixels (0..255; the runner quantizes with the model's input scale and zero point
 * through a lookup table computed on the host). Writes num_classes raw outputs to raw_out: the int8 output
 * tensor widened to int32 (neural backends) or the int32 class scores (linear). Returns the predicted
 * class (first index of the maximum), or a negative code on failure. */
int edgedigit_model_invoke(const uint8_t *pixels, int32_t *raw_out);

#ifdef __cplusplus
}
#endif
#endif /* EDGEDIGIT_MODEL_H */
