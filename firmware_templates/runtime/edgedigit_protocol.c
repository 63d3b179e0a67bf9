/* edgedigit: the device side of the serial protocol. Hand-written; shipped with every firmware project.
 *
 * Speaks the MLPerf Tiny / EEMBC DUT commands (name%, profile%, timestamp%, db load N%, db HH..%,
 * db print [N [OFFSET]]%, infer N W%, results%, help%) and edgedigit's own (ed-info%, ed-run [DATA]%,
 * ed-echo TOKEN%). The full specification, with every response line, is docs/protocol.md.
 *
 * Model-agnostic: the input buffer is the runner's (its size is the model's input), the raw outputs are
 * read from the runner, and nothing is printed that was not asked for (no boot banner: a client that
 * connects late, like the MLPerf Tiny runner, reads only answers to its own commands).
 *
 * Built for a hostile line: every buffer has a fixed size, every byte that can arrive is handled, and
 * after any garbage, over-long command, bad hex or cut frame the device answers the next valid command.
 * Uses only edgedigit_platform.h, edgedigit_model.h and edgedigit_rom.h; no heap, no libc.
 *
 * Every string literal is written S("...") and passed to the *_s helpers: on AVR it stays in flash
 * (PROGMEM, read byte by byte), elsewhere S() is the plain literal. Strings that live in RAM (the platform
 * and model names, the echoed token, digits) go through put().
 */
#include "edgedigit_protocol.h"

#include "edgedigit_model.h"
#include "edgedigit_platform.h"
#include "edgedigit_rom.h"

#define EDGEDIGIT_PROTOCOL_VERSION 2u

/* Longest command (without the '%'): by default `ed-run` with a whole digit image in plain hex. Boards with
 * little RAM may define a smaller value; the host reads it from ed-info and sizes its frames to fit. Larger
 * inputs are loaded in several `db` frames. */
#ifndef EDGEDIGIT_CMD_MAX
#define EDGEDIGIT_CMD_MAX (7 + 2 * EDGEDIGIT_IMAGE_BYTES)
#endif
/* A partial command is dropped when no byte arrived for this long (a cut frame must not swallow the
 * next command). */
#ifndef EDGEDIGIT_FRAME_TIMEOUT_US
#define EDGEDIGIT_FRAME_TIMEOUT_US 2000000u
#endif
#define EDGEDIGIT_MAX_LOOPS 100000000u
#define EDGEDIGIT_MAX_TOKENS 4

/* A string literal kept in read-only memory (flash on AVR): only for the *_s helpers below. */
#define S(text) EDGEDIGIT_ROM_STR(text)

static char s_cmd[EDGEDIGIT_CMD_MAX + 1];
static uint32_t s_cmd_len;
static uint8_t s_overflow;     /* the current command outgrew s_cmd: discard it up to its '%' */
static uint8_t s_nonprint;     /* the current command holds a byte outside printable ASCII */
static uint32_t s_last_byte_us;
static uint8_t s_have_partial;

static uint8_t *s_db;          /* the runner's input buffer (edgedigit_model_input) */
static uint32_t s_db_max;      /* its size: the model's input bytes */
static uint32_t s_db_expected; /* bytes announced by `db load N`; 0: no load in progress or done */
static uint32_t s_db_filled;   /* bytes received so far for the current load */

static int s_last_class = -1;  /* -1: no inference yet */
static int s_model_status;     /* edgedigit_model_init()'s result: inferences are refused unless 0 */
static uint32_t s_model_crc;   /* CRC-32 of the model's data in flash, computed at boot */
static uint64_t s_crc_counter; /* what computing it cost, in counter units */

/* ---- output ---------------------------------------------------------------------------------------- */

static uint32_t str_len(const char *s) {
    uint32_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    return n;
}

/* A string in RAM. */
static void put(const char *s) { edgedigit_platform_write(s, str_len(s)); }

/* A string literal S("..."), written in chunks through a small buffer (on AVR it is read from flash). */
static void put_s(const char *rom) {
    char buf[16];
    uint32_t n = 0;
    char c;
    while ((c = EDGEDIGIT_ROM_CHAR(rom)) != '\0') {
        rom++;
        buf[n++] = c;
        if (n == sizeof buf) {
            edgedigit_platform_write(buf, n);
            n = 0;
        }
    }
    if (n != 0u) {
        edgedigit_platform_write(buf, n);
    }
}

/* Decimal digits of v by long division of its four 16-bit limbs by 10 with 32-bit arithmetic: no 64-bit
 * division, so no __aeabi_uldivmod / __udivdi3 (~0.7 KB on Cortex-M, more on AVR) in any firmware. */
static void put_u64(uint64_t v) {
    char buf[21];
    int i = 20;
    uint16_t limb[4] = {(uint16_t)(v >> 48), (uint16_t)(v >> 32), (uint16_t)(v >> 16), (uint16_t)v};
    uint32_t left;
    buf[i] = '\0';
    do {
        uint32_t r = 0u;
        left = 0u;
        for (int k = 0; k < 4; k++) {
            uint32_t cur = (r << 16) | limb[k]; /* r < 10: cur < 10 * 65536 */
            limb[k] = (uint16_t)(cur / 10u);
            r = cur % 10u;
            left |= limb[k];
        }
        buf[--i] = (char)('0' + (int)r);
    } while (left != 0u);
    put(&buf[i]);
}

static void put_hex32(uint32_t v) {
    char buf[9];
    for (int i = 7; i >= 0; i--) {
        uint32_t d = v & 0xFu;
        buf[i] = (char)(d < 10u ? '0' + (int)d : 'a' + (int)d - 10);
        v >>= 4;
    }
    buf[8] = '\0';
    put(buf);
}

static void put_i32(int32_t v) {
    if (v < 0) {
        put_s(S("-"));
        put_u64((uint64_t)(-(int64_t)v));
    } else {
        put_u64((uint64_t)v);
    }
}

/* A real value with three decimals (rounded half away from zero), clamped to +-2e6. */
static void put_fixed3(float v) {
    if (!(v == v)) { /* NaN */
        put_s(S("nan"));
        return;
    }
    if (v > 2.0e6f) {
        v = 2.0e6f;
    } else if (v < -2.0e6f) {
        v = -2.0e6f;
    }
    float scaled = v * 1000.0f;
    int32_t milli = (int32_t)(scaled < 0.0f ? scaled - 0.5f : scaled + 0.5f);
    uint32_t mag;
    if (milli < 0) {
        put_s(S("-"));
        mag = (uint32_t)(-(int64_t)milli);
    } else {
        mag = (uint32_t)milli;
    }
    put_u64(mag / 1000u);
    char frac[5] = {'.', (char)('0' + (int)(mag / 100u % 10u)), (char)('0' + (int)(mag / 10u % 10u)),
                    (char)('0' + (int)(mag % 10u)), '\0'};
    put(frac);
}

/* key[value]: key is a literal S("..."), value a string in RAM. */
static void line_kv(const char *key, const char *value) {
    put_s(key);
    put_s(S("["));
    put(value);
    put_s(S("]\r\n"));
}

/* key[value]: key is a literal S("..."). */
static void line_ku(const char *key, uint64_t value) {
    put_s(key);
    put_s(S("["));
    put_u64(value);
    put_s(S("]\r\n"));
}

/* e-[what]: what is a literal S("..."). */
static void error_line(const char *what) {
    put_s(S("e-["));
    put_s(what);
    put_s(S("]\r\n"));
}

/* e-[what VALUE tail]: what and tail are literals S("..."). */
static void error_line_u(const char *what, uint64_t value, const char *tail) {
    put_s(S("e-["));
    put_s(what);
    put_u64(value);
    put_s(tail);
    put_s(S("]\r\n"));
}

/* ---- parsing helpers -------------------------------------------------------------------------------- */

/* a (in RAM) equals the literal rom, S("..."). */
static int str_eq_s(const char *a, const char *rom) {
    while (*a != '\0' && *a == EDGEDIGIT_ROM_CHAR(rom)) {
        a++;
        rom++;
    }
    return *a == EDGEDIGIT_ROM_CHAR(rom);
}

/* Decimal digits only, at most 9 of them; 0 on success. */
static int parse_u32(const char *s, uint32_t *out) {
    uint32_t v = 0;
    uint32_t n = 0;
    if (s == 0 || *s == '\0') {
        return -1;
    }
    for (; *s != '\0'; s++, n++) {
        if (*s < '0' || *s > '9' || n >= 9u) {
            return -1;
        }
        v = v * 10u + (uint32_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static int hex_nibble(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Split s_cmd in place at spaces; returns the number of tokens (at most EDGEDIGIT_MAX_TOKENS + 1, the
 * last meaning "too many"). */
static int tokenize(char **tok) {
    int n = 0;
    char *p = s_cmd;
    while (*p != '\0') {
        while (*p == ' ') {
            *p++ = '\0';
        }
        if (*p == '\0') {
            break;
        }
        if (n == EDGEDIGIT_MAX_TOKENS) {
            return EDGEDIGIT_MAX_TOKENS + 1;
        }
        tok[n++] = p;
        while (*p != '\0' && *p != ' ') {
            p++;
        }
    }
    return n;
}

/* ---- commands --------------------------------------------------------------------------------------- */

/* e^x for x <= 0 from +, * and the float's exponent bits only (no libm): the same bits on every target,
 * so AVR and host print the same scores. Relative error below 2e-7; 0 below -87. */
static float exp_neg(float x) {
    float t = x * 1.44269504f; /* x / ln 2 */
    if (!(t > -126.0f)) {
        return 0.0f;
    }
    int32_t k = (int32_t)t;
    if ((float)k > t) {
        k--; /* floor */
    }
    float f = t - (float)k; /* 0 <= f < 1 */
    float p = 1.0f + f * (0.693147182f + f * (0.240226507f + f * (0.0555041087f + f * (0.00961812911f +
              f * (0.00133335581f + f * 0.000154035304f)))));
    union {
        float f;
        uint32_t u;
    } two_k;
    two_k.u = (uint32_t)(k + 127) << 23; /* 2^k, -126 <= k <= 0 */
    return p * two_k.f;
}

static float dequantize_output(const edgedigit_model_info_t *info, uint32_t i) {
    return (float)(edgedigit_model_output(i) - info->output_zero_point) * info->output_scale;
}

static void print_results(void) {
    const edgedigit_model_info_t *info = edgedigit_model_info();
    uint32_t n = info->num_outputs;
    put_s(S("m-results-["));
    if (info->scores == EDGEDIGIT_SCORES_MSE) {
        /* the anomaly score of an autoencoder: mean squared error between the dequantized input and output */
        float sum = 0.0f;
        for (uint32_t i = 0; i < n && i < s_db_max; i++) {
            int32_t q = info->input_kind == EDGEDIGIT_INPUT_INT8 ? (int32_t)(int8_t)s_db[i] : (int32_t)s_db[i];
            float d = dequantize_output(info, i) - (float)(q - info->input_zero_point) * info->input_scale;
            sum += d * d;
        }
        put_fixed3(n != 0u ? sum / (float)n : 0.0f);
    } else if (info->scores == EDGEDIGIT_SCORES_SOFTMAX) {
        float top = dequantize_output(info, 0);
        for (uint32_t i = 1; i < n; i++) {
            float v = dequantize_output(info, i);
            top = v > top ? v : top;
        }
        float total = 0.0f;
        for (uint32_t i = 0; i < n; i++) {
            total += exp_neg(dequantize_output(info, i) - top);
        }
        for (uint32_t i = 0; i < n; i++) {
            if (i != 0u) {
                put_s(S(","));
            }
            put_fixed3(exp_neg(dequantize_output(info, i) - top) / total);
        }
    } else {
        for (uint32_t i = 0; i < n; i++) {
            if (i != 0u) {
                put_s(S(","));
            }
            put_fixed3(dequantize_output(info, i));
        }
    }
    put_s(S("]\r\n"));
}

static int input_ready(void) {
    if (s_db_filled != s_db_max || s_db_expected != s_db_filled) {
        put_s(S("e-[no complete input loaded: need db load "));
        put_u64(s_db_max);
        put_s(S(" and "));
        put_u64(s_db_max);
        put_s(S(" bytes, have "));
        put_u64(s_db_filled);
        put_s(S(" bytes]\r\n"));
        return 0;
    }
    if (s_model_status != 0) {
        put_s(S("e-[model init failed with code "));
        put_i32(s_model_status);
        put_s(S("]\r\n"));
        return 0;
    }
    return 1;
}

static int run_once(void) {
    int cls = edgedigit_model_invoke();
    if (cls < 0) {
        put_s(S("e-[model invoke failed with code "));
        put_i32(cls);
        put_s(S("]\r\n"));
        s_last_class = -1;
        return 0;
    }
    s_last_class = cls;
    return 1;
}

/* Decode `text` into the db buffer after the bytes already loaded. Plain data is pairs of hex digits (the
 * MLPerf `db` format); with `zeros` set, `z` + two hex digits NN also stands for NN + 1 zero bytes (the
 * compact form of ed-run). The whole frame is checked before any byte is stored: a bad frame changes
 * nothing. Returns 1 when stored, 0 after printing the error. */
static int load_data(const char *text, int zeros) {
    uint32_t room = s_db_expected - s_db_filled;
    uint32_t count = 0;
    uint32_t i = 0;
    while (text[i] != '\0') {
        int is_run = zeros && text[i] == 'z';
        uint32_t at = is_run ? i + 1u : i;
        if (text[at] == '\0' || text[at + 1u] == '\0') {
            error_line_u(S("data ends inside a byte at offset "), i, S(" (odd number of hex digits); frame ignored"));
            return 0;
        }
        int hi = hex_nibble(text[at]);
        int lo = hex_nibble(text[at + 1u]);
        if (hi < 0 || lo < 0) {
            error_line_u(S("non-hex character near offset "), at, S("; frame ignored"));
            return 0;
        }
        count += is_run ? (uint32_t)((hi << 4) | lo) + 1u : 1u;
        if (count > room) {
            error_line_u(S("data overruns the load of "), s_db_expected, S(" bytes; frame ignored"));
            return 0;
        }
        i = at + 2u;
    }
    for (i = 0; text[i] != '\0';) {
        int is_run = zeros && text[i] == 'z';
        uint32_t at = is_run ? i + 1u : i;
        uint32_t value = (uint32_t)((hex_nibble(text[at]) << 4) | hex_nibble(text[at + 1u]));
        if (is_run) {
            for (uint32_t k = 0; k <= value; k++) {
                s_db[s_db_filled++] = 0u;
            }
        } else {
            s_db[s_db_filled++] = (uint8_t)value;
        }
        i = at + 2u;
    }
    return 1;
}

/* db print [N=16 [OFFSET=0]]: N loaded bytes from OFFSET as hex, 8 per line (m-buffer-xx-xx-...). */
static void cmd_db_print(char **tok, int ntok) {
    uint32_t n = 16;
    uint32_t at = 0;
    if ((ntok >= 3 && parse_u32(tok[2], &n) != 0) || (ntok == 4 && parse_u32(tok[3], &at) != 0)) {
        error_line(S("db print needs N and optionally OFFSET (decimal)"));
        return;
    }
    if (at > s_db_filled) {
        error_line_u(S("db print offset beyond the "), s_db_filled, S(" bytes loaded"));
        return;
    }
    if (n > s_db_filled - at) {
        n = s_db_filled - at;
    }
    static const char k_hex[] EDGEDIGIT_ROM = "0123456789abcdef";
    for (uint32_t i = 0; i < n; i++) {
        char pair[4] = {EDGEDIGIT_ROM_CHAR(&k_hex[s_db[at + i] >> 4]), EDGEDIGIT_ROM_CHAR(&k_hex[s_db[at + i] & 0xFu]),
                        '-', '\0'};
        if (i % 8u == 0u) {
            put_s(S("m-buffer-"));
        }
        if (i % 8u == 7u || i + 1u == n) {
            pair[2] = '\0';
            put(pair);
            put_s(S("\r\n"));
        } else {
            put(pair);
        }
    }
}

static void cmd_db(char **tok, int ntok) {
    if (ntok == 3 && str_eq_s(tok[1], S("load"))) {
        uint32_t n;
        if (parse_u32(tok[2], &n) != 0 || n == 0u) {
            error_line_u(S("db load needs a byte count 1.."), s_db_max, S(""));
            return;
        }
        if (n > s_db_max) {
            put_s(S("e-[db load of "));
            put_u64(n);
            put_s(S(" bytes exceeds the model's input of "));
            put_u64(s_db_max);
            put_s(S(" bytes]\r\n"));
            return;
        }
        s_db_expected = n;
        s_db_filled = 0;
        put_s(S("m-[Expecting "));
        put_u64(n);
        put_s(S(" bytes]\r\n"));
        return;
    }
    if (ntok >= 2 && ntok <= 4 && str_eq_s(tok[1], S("print"))) {
        cmd_db_print(tok, ntok);
        return;
    }
    if (ntok != 2) {
        error_line(S("db needs 'load N', 'print [N [OFFSET]]' or one run of hex digits"));
        return;
    }
    if (s_db_expected == 0u || s_db_filled >= s_db_expected) {
        error_line(S("db data without a db load in progress"));
        return;
    }
    if (load_data(tok[1], 0) && s_db_filled == s_db_expected) {
        put_s(S("m-load-done\r\n"));
    }
}

static void cmd_infer(char **tok, int ntok) {
    uint32_t n = 1;
    uint32_t warm = 10; /* the EEMBC default when W is omitted */
    if (ntok < 2 || ntok > 3 || parse_u32(tok[1], &n) != 0 || n == 0u ||
        (ntok == 3 && parse_u32(tok[2], &warm) != 0) || n > EDGEDIGIT_MAX_LOOPS || warm > EDGEDIGIT_MAX_LOOPS) {
        error_line(S("infer needs N (1..100000000) and optionally W (0..100000000)"));
        return;
    }
    if (!input_ready()) {
        return;
    }
    put_s(S("m-warmup-start-"));
    put_u64(warm);
    put_s(S("\r\n"));
    for (uint32_t i = 0; i < warm; i++) {
        if (!run_once()) {
            return;
        }
    }
    put_s(S("m-warmup-done\r\n"));
    put_s(S("m-infer-start-"));
    put_u64(n);
    put_s(S("\r\n"));
    uint32_t t0 = edgedigit_platform_micros();
    for (uint32_t i = 0; i < n; i++) {
        if (!run_once()) {
            return;
        }
    }
    uint32_t t1 = edgedigit_platform_micros();
    put_s(S("m-lap-us-"));
    put_u64(t0);
    put_s(S("\r\nm-lap-us-"));
    put_u64(t1);
    put_s(S("\r\nm-infer-done\r\n"));
    print_results();
}

static void cmd_ed_info(void) {
    const edgedigit_model_info_t *info = edgedigit_model_info();
    line_ku(S("m-ed-protocol-"), EDGEDIGIT_PROTOCOL_VERSION);
    line_kv(S("m-ed-platform-"), edgedigit_platform_name());
    line_kv(S("m-ed-variant-"), info->variant);
    line_kv(S("m-ed-model-id-"), info->model_id);
    line_kv(S("m-ed-backend-"), info->backend);
    line_kv(S("m-ed-model-sha256-"), info->model_sha256);
    put_s(S("m-ed-model-crc32-["));
    put_hex32(s_model_crc);
    put_s(S("]\r\n"));
    line_ku(S("m-ed-crc-counter-"), s_crc_counter);
    put_s(S("m-ed-model-init-["));
    put_i32(s_model_status);
    put_s(S("]\r\n"));
    line_ku(S("m-ed-input-bytes-"), info->input_bytes);
    put_s(info->input_kind == EDGEDIGIT_INPUT_PIXELS ? S("m-ed-input-[pixels]\r\n")
          : info->input_kind == EDGEDIGIT_INPUT_UINT8 ? S("m-ed-input-[uint8]\r\n") : S("m-ed-input-[int8]\r\n"));
    line_ku(S("m-ed-outputs-"), info->num_outputs);
    line_kv(S("m-ed-output-"), info->output_kind);
    put_s(info->scores == EDGEDIGIT_SCORES_MSE ? S("m-ed-scores-[mse]\r\n")
          : info->scores == EDGEDIGIT_SCORES_SOFTMAX ? S("m-ed-scores-[softmax]\r\n")
                                                     : S("m-ed-scores-[dequantized]\r\n"));
    line_ku(S("m-ed-arena-bytes-"), info->arena_bytes);
    line_ku(S("m-ed-protocol-bytes-"), sizeof(s_cmd));
    line_ku(S("m-ed-cmd-max-"), EDGEDIGIT_CMD_MAX);
    line_kv(S("m-ed-counter-unit-"), edgedigit_platform_counter_unit());
}

static void cmd_ed_run(char **tok, int ntok) {
    if (ntok == 2) { /* ed-run DATA: load a whole input (hex with zero runs), then run it */
        s_db_expected = s_db_max;
        s_db_filled = 0;
        if (!load_data(tok[1], 1)) {
            s_db_expected = 0;
            return;
        }
    }
    if (!input_ready()) {
        return;
    }
    uint64_t c0 = edgedigit_platform_counter();
    uint32_t t0 = edgedigit_platform_micros();
    int ok = run_once();
    uint32_t t1 = edgedigit_platform_micros();
    uint64_t c1 = edgedigit_platform_counter();
    if (!ok) {
        return;
    }
    uint32_t n = edgedigit_model_info()->num_outputs;
    line_ku(S("m-ed-class-"), (uint64_t)s_last_class);
    put_s(S("m-ed-raw-["));
    for (uint32_t i = 0; i < n; i++) {
        if (i != 0u) {
            put_s(S(","));
        }
        put_i32(edgedigit_model_output(i));
    }
    put_s(S("]\r\n"));
    line_ku(S("m-ed-counter-"), c1 - c0);
    line_ku(S("m-ed-us-"), (uint32_t)(t1 - t0));
}

static void cmd_help(void) {
    put_s(S("m-help-[name% profile% timestamp% db load N% db HH..% db print [N [OFFSET]]% "));
    put_s(S("infer N W% results% help%]\r\n"));
    put_s(S("m-help-[ed-info% ed-run [DATA]% ed-echo TOKEN%; see docs/protocol.md]\r\n"));
}

static void execute(void) {
    char *tok[EDGEDIGIT_MAX_TOKENS];
    int ntok = tokenize(tok);
    if (ntok == 0) {
        return; /* an empty command only answers m-ready: the host's way to resynchronize */
    }
    if (ntok > EDGEDIGIT_MAX_TOKENS) {
        error_line(S("too many words in the command"));
        return;
    }
    const char *c = tok[0];
    if (str_eq_s(c, S("name")) && ntok == 1) {
        put_s(S("m-name-dut-[edgedigit "));
        put(edgedigit_platform_name());
        put_s(S("]\r\n"));
    } else if (str_eq_s(c, S("profile")) && ntok == 1) {
        put_s(S("m-profile-[edgedigit]\r\n"));
        line_kv(S("m-model-"), edgedigit_model_info()->model_id);
    } else if (str_eq_s(c, S("timestamp")) && ntok == 1) {
        put_s(S("m-lap-us-"));
        put_u64(edgedigit_platform_micros());
        put_s(S("\r\n"));
    } else if (str_eq_s(c, S("db"))) {
        cmd_db(tok, ntok);
    } else if (str_eq_s(c, S("infer"))) {
        cmd_infer(tok, ntok);
    } else if (str_eq_s(c, S("results")) && ntok == 1) {
        if (s_last_class < 0) {
            error_line(S("no results: run infer first"));
        } else {
            print_results();
        }
    } else if (str_eq_s(c, S("help")) && ntok == 1) {
        cmd_help();
    } else if (str_eq_s(c, S("ed-info")) && ntok == 1) {
        cmd_ed_info();
    } else if (str_eq_s(c, S("ed-run")) && ntok <= 2) {
        cmd_ed_run(tok, ntok);
    } else if (str_eq_s(c, S("ed-echo")) && ntok == 2 && str_len(tok[1]) <= 16u) {
        line_kv(S("m-ed-echo-"), tok[1]);
    } else {
        error_line(S("unknown command or wrong arguments; try help%"));
    }
}

/* ---- framing ---------------------------------------------------------------------------------------- */

static void reset_frame(void) {
    s_cmd_len = 0;
    s_overflow = 0;
    s_nonprint = 0;
    s_have_partial = 0;
}

/* The reflected CRC-32 (zlib's, polynomial 0xEDB88320) four bits at a time: a 64-byte table. */
static const uint32_t k_crc_nibble[16] EDGEDIGIT_ROM = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

static uint32_t crc_nibble(uint32_t crc, uint32_t bits) {
    return (crc >> 4) ^ (uint32_t)EDGEDIGIT_ROM_I32(&k_crc_nibble[(crc ^ bits) & 0xFu]);
}

/* CRC-32 over every region of the model's data, in the runner's order (the host computes the same). */
static uint32_t model_crc32(void) {
    uint32_t crc = 0xFFFFFFFFu;
    edgedigit_model_region_t r;
    for (uint32_t k = 0; edgedigit_model_region(k, &r); k++) {
        const uint8_t *p = (const uint8_t *)r.data;
        for (uint32_t i = 0; i < r.bytes; i++) {
            uint32_t b = r.in_rom ? (uint32_t)(uint8_t)EDGEDIGIT_ROM_I8(p + i) : (uint32_t)p[i];
            crc = crc_nibble(crc, b);
            crc = crc_nibble(crc, b >> 4);
        }
    }
    return crc ^ 0xFFFFFFFFu;
}

void edgedigit_protocol_init(int model_status) {
    reset_frame();
    s_db = edgedigit_model_input();
    s_db_max = edgedigit_model_info()->input_bytes;
    s_db_expected = 0;
    s_db_filled = 0;
    s_last_class = -1;
    s_model_status = model_status;
    uint64_t c0 = edgedigit_platform_counter();
    s_model_crc = model_crc32();
    s_crc_counter = edgedigit_platform_counter() - c0;
}

void edgedigit_protocol_feed(char c) {
    uint32_t now = edgedigit_platform_micros();
    if (s_have_partial && (uint32_t)(now - s_last_byte_us) > EDGEDIGIT_FRAME_TIMEOUT_US) {
        reset_frame(); /* a cut frame: drop it silently */
    }
    s_last_byte_us = now;
    if (c == '%') {
        if (s_overflow) {
            error_line_u(S("command longer than "), EDGEDIGIT_CMD_MAX, S(" bytes discarded"));
        } else if (s_nonprint) {
            error_line(S("command with non-printable bytes discarded"));
        } else {
            s_cmd[s_cmd_len] = '\0';
            execute();
        }
        reset_frame();
        put_s(S("m-ready\r\n"));
        return;
    }
    if (c == '\r' || c == '\n') {
        return; /* line ends from terminals are not part of any command */
    }
    s_have_partial = 1;
    if ((unsigned char)c < 0x20u || (unsigned char)c > 0x7eu) {
        s_nonprint = 1;
        return;
    }
    if (s_cmd_len >= EDGEDIGIT_CMD_MAX) {
        s_overflow = 1;
        return;
    }
    s_cmd[s_cmd_len++] = c;
}

void edgedigit_protocol_poll(void) {
    int c;
    while ((c = edgedigit_platform_read_char()) >= 0) {
        edgedigit_protocol_feed((char)c);
    }
}
