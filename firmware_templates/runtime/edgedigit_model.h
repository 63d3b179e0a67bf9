/* edgedigit: the model runner interface. Hand-written; shipped with every firmware project.
 *
 * One implementation per backend (tflm: C++, native: C, linear: C). The protocol and platform layers
 * call only these functions, so the same protocol code compiles for every board, backend and model.
 *
 * The runner owns the input buffer (its size is the model's: input_bytes). The protocol loads each
 * inference's bytes into it: for a digit classifier (input_kind PIXELS) a 28 x 28 image of raw pixels
 * 0..255, which the runner turns into the model's int8 input through a table computed on the host; for any
 * other model the input tensor's own bytes (int8 or uint8), copied as they are.
 */
#ifndef EDGEDIGIT_MODEL_H
#define EDGEDIGIT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEDIGIT_IMAGE_BYTES 784 /* a digit image: 28 x 28 raw pixels, 0..255 */
#define EDGEDIGIT_MAX_CLASSES 16  /* the most classes a digit classifier (and the linear backend) reports */

/* What the loaded bytes are (edgedigit_model_info_t.input_kind). */
#define EDGEDIGIT_INPUT_PIXELS 0u /* raw pixels 0..255, quantized by the runner's input table */
#define EDGEDIGIT_INPUT_INT8 1u   /* the int8 input tensor's bytes as they are */
#define EDGEDIGIT_INPUT_UINT8 2u  /* the uint8 input tensor's bytes as they are */

/* How `m-results-[...]` is formed from the raw outputs (edgedigit_model_info_t.scores). */
#define EDGEDIGIT_SCORES_DEQUANTIZED 0u /* (raw - output_zero_point) * output_scale, each output */
#define EDGEDIGIT_SCORES_SOFTMAX 1u     /* the softmax of the dequantized outputs (logits -> probabilities) */
#define EDGEDIGIT_SCORES_MSE 2u         /* one value: mean squared error of dequantized input vs output */

typedef struct {
    const char *variant;       /* e.g. "mlp" or the .tflite's file stem */
    const char *model_id;      /* profile%'s m-model: an MLPerf Tiny id (ic01, kws01, vww01, ad01) or the variant */
    const char *backend;       /* "tflm", "native" or "linear" */
    const char *model_sha256;  /* sha256 of the source model file (64 hex chars) */
    uint32_t input_bytes;      /* bytes loaded per inference */
    uint32_t num_outputs;      /* raw outputs per inference */
    uint32_t arena_bytes;      /* activation memory: TFLM arena or the native static plan; 0 for linear */
    float input_scale;         /* input value -> real value (SCORES_MSE): (value - zero_point) * scale */
    int32_t input_zero_point;
    float output_scale;        /* raw output -> real value: (raw - zero_point) * scale */
    int32_t output_zero_point;
    const char *output_kind;   /* "int8" (neural) or "int32" (linear scores) */
    uint8_t input_kind;        /* EDGEDIGIT_INPUT_* */
    uint8_t scores;            /* EDGEDIGIT_SCORES_* */
} edgedigit_model_info_t;

/* A piece of model data in flash (weights, tables, the .tflite): what the boot check (CRC-32) covers. */
typedef struct {
    const void *data;
    uint32_t bytes;
    uint8_t in_rom; /* kept in flash with EDGEDIGIT_ROM (AVR PROGMEM): read through EDGEDIGIT_ROM_* */
} edgedigit_model_region_t;

const edgedigit_model_info_t *edgedigit_model_info(void);

/* Prepare the runner (allocate tensors, check the model). 0 on success, a negative code otherwise. */
int edgedigit_model_init(void);

/* The input buffer (info->input_bytes bytes) the protocol loads before edgedigit_model_invoke(). */
uint8_t *edgedigit_model_input(void);

/* Run one inference on the input buffer. Returns the predicted class (first index of the largest raw
 * output), or a negative code on failure. */
int edgedigit_model_invoke(void);

/* Raw output i (0 <= i < num_outputs) of the last successful invoke: the int8 output tensor widened to
 * int32 (neural backends) or the int32 class score (linear). */
int32_t edgedigit_model_output(uint32_t i);

/* Region i of the model's data in flash, in a fixed order; 0 when there is no region i. */
int edgedigit_model_region(uint32_t i, edgedigit_model_region_t *out);

#ifdef __cplusplus
}
#endif
#endif /* EDGEDIGIT_MODEL_H */
