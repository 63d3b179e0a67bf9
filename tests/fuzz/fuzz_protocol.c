/* libFuzzer harness for the device side of the serial protocol (firmware_templates/runtime/
 * edgedigit_protocol.c), built on the host with clang -fsanitize=fuzzer,address,undefined.
 *
 * Each fuzz input is one session on a fresh device: the first byte sets how far the clock moves per
 * received byte (so cut frames and the frame timeout are reached), the rest is the byte stream on the
 * serial line. Besides the sanitizers, the harness checks what the host relies on and traps otherwise:
 *   - every command terminator '%' is answered by exactly one "m-ready" line (the device never goes
 *     silent and never answers twice);
 *   - every output line is printable ASCII, ends with "\r\n", starts with "m-" or "e-", and is short;
 *   - the model runner is only called on a complete input;
 *   - nothing is printed at init (a late client reads only answers to its own commands).
 * The stand-in runner fails after a small budget of invocations per session, so `infer 100000000%`
 * exercises the error path instead of stalling the fuzzer.
 *
 * Build with -DEDGEDIGIT_FUZZ_ECHO to copy the device's answers to stderr (the tests read them).
 * Build with -DEDGEDIGIT_FUZZ_INJECT_BUG to make the runner read one byte past its input: the sanitizer
 * must then report it (the CI test checks that the harness can fail).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef EDGEDIGIT_FUZZ_ECHO
#include <stdio.h>
#endif

#include "edgedigit_protocol.c"

#define FUZZ_MAX_LINE 256
#define FUZZ_INVOKE_BUDGET 64

static uint32_t g_clock_us;
static uint32_t g_step_us;
static char g_line[FUZZ_MAX_LINE + 2];
static size_t g_line_len;
static size_t g_ready_lines;
static uint32_t g_invokes;

static void check(int ok) {
    if (!ok) {
        __builtin_trap();
    }
}

/* ---- platform (edgedigit_platform.h) ---- */

void edgedigit_platform_init(void) {}
int edgedigit_platform_read_char(void) { return -1; }
uint32_t edgedigit_platform_micros(void) { return g_clock_us; }
uint64_t edgedigit_platform_counter(void) { return (uint64_t)g_clock_us * 1000u; }
const char *edgedigit_platform_counter_unit(void) { return "ns"; }
const char *edgedigit_platform_name(void) { return "fuzz"; }

static void end_line(void) {
    check(g_line_len >= 3u);
    check(g_line[g_line_len - 1] == '\r');
    check((g_line[0] == 'm' || g_line[0] == 'e') && g_line[1] == '-');
    if (g_line_len == 8u && memcmp(g_line, "m-ready\r", 8) == 0) {
        g_ready_lines++;
    }
    g_line_len = 0;
}

void edgedigit_platform_write(const char *data, size_t len) {
#ifdef EDGEDIGIT_FUZZ_ECHO
    fwrite(data, 1, len, stderr);
#endif
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (c == '\n') {
            end_line();
            continue;
        }
        check(c == '\r' || ((unsigned char)c >= 0x20u && (unsigned char)c <= 0x7eu));
        check(g_line_len < FUZZ_MAX_LINE);
        g_line[g_line_len++] = c;
    }
}

/* ---- model runner (edgedigit_model.h) ---- */

static const edgedigit_model_info_t k_info = {
    "fuzz", "fuzz", "test", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    EDGEDIGIT_IMAGE_BYTES, 10u, 1234u, 1.0f, 0, 0.00390625f, -128, "int8", EDGEDIGIT_INPUT_PIXELS,
    EDGEDIGIT_SCORES_DEQUANTIZED,
};
static uint8_t g_input[EDGEDIGIT_IMAGE_BYTES];
static int32_t g_raw[10];
static const uint8_t k_data[3] = {7, 8, 9};

const edgedigit_model_info_t *edgedigit_model_info(void) { return &k_info; }
int edgedigit_model_init(void) { return 0; }
uint8_t *edgedigit_model_input(void) { return g_input; }

int edgedigit_model_invoke(void) {
    check(s_db_filled == EDGEDIGIT_IMAGE_BYTES);
    if (++g_invokes > FUZZ_INVOKE_BUDGET) {
        return -7;
    }
    const uint8_t *in = edgedigit_model_input(); /* through a pointer, as the protocol hands it over */
    uint32_t sum = 0;
#ifdef EDGEDIGIT_FUZZ_INJECT_BUG
    for (int i = 0; i <= EDGEDIGIT_IMAGE_BYTES; i++) {
#else
    for (int i = 0; i < EDGEDIGIT_IMAGE_BYTES; i++) {
#endif
        sum += in[i];
    }
    int best = 0;
    for (uint32_t k = 0; k < k_info.num_outputs; k++) {
        g_raw[k] = (int32_t)((sum * (k + 1u) + k) % 256u) - 128;
        if (g_raw[k] > g_raw[best]) {
            best = (int)k;
        }
    }
    return best;
}

int32_t edgedigit_model_output(uint32_t i) {
    check(i < k_info.num_outputs);
    return g_raw[i];
}

int edgedigit_model_region(uint32_t i, edgedigit_model_region_t *out) {
    out->data = k_data;
    out->bytes = sizeof k_data;
    out->in_rom = 0u;
    return i == 0u;
}

/* ---- one session per input ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0u) {
        return 0;
    }
    g_clock_us = 1000u;
    g_step_us = (uint32_t)data[0] * 10000u; /* 0 .. 2.55 s per byte: up to past the frame timeout */
    g_line_len = 0;
    g_ready_lines = 0;
    g_invokes = 0;
    edgedigit_protocol_init(0);
    check(g_ready_lines == 0u && g_line_len == 0u); /* nothing printed at boot */
    size_t terminators = 0;
    for (size_t i = 1; i < size; i++) {
        g_clock_us += g_step_us;
        edgedigit_protocol_feed((char)data[i]);
        if (data[i] == '%') {
            terminators++;
        }
        check(g_ready_lines == terminators); /* answered at once, exactly once */
        check(g_line_len == 0u);                  /* never a line left half-written */
    }
    return 0;
}
