/* edgedigit: the device side of the serial protocol. Hand-written; shipped with every firmware project.
 *
 * Speaks the MLPerf Tiny / EEMBC DUT commands (name%, profile%, timestamp%, db load N%, db HH..%,
 * infer N W%, results%, help%) and edgedigit's own (ed-info%, ed-run [DATA]%, ed-echo TOKEN%). The full
 * specification, with every response line, is docs/protocol.md.
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

#define EDGEDIGIT_PROTOCOL_VERSION 1u

/* Longest command (without the '%'): by default `ed-run` with a whole image in plain hex. Boards with
 * little RAM may define a smaller value; the host reads it from ed-info and sizes its frames to fit. */
#ifndef EDGEDIGIT_CMD_MAX
#define EDGEDIGIT_CMD_MAX (7 + 2 * EDGEDIGIT_IMAGE_BYTES)
#endif
/* A partial command is dropped when no byte arrived for this long (a cut frame must not swallow the
 * next command). */
#ifndef EDGEDIGIT_FRAME_TIMEOUT_US
#define EDGEDIGIT_FRAME_TIMEOUT_US 2000000u
#endif
#define EDGEDIGIT_DB_MAX EDGEDIGIT_IMAGE_BYTES
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

static uint8_t s_db[EDGEDIGIT_DB_MAX];
static uint32_t s_db_expected; /* bytes announced by `db load N`; 0: no load in progress or done */
static uint32_t s_db_filled;   /* bytes received so far for the current load */

static int32_t s_raw[EDGEDIGIT_MAX_CLASSES];
static int s_last_class = -1;  /* -1: no inference yet */

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

static void put_u64(uint64_t v) {
    char buf[21];
    int i = 20;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    put(&buf[i]);
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

static void print_results(void) {
    const edgedigit_model_info_t *info = edgedigit_model_info();
    uint32_t n = info->num_classes <= EDGEDIGIT_MAX_CLASSES ? info->num_classes : EDGEDIGIT_MAX_CLASSES;
    put_s(S("m-results-["));
    for (uint32_t i = 0; i < n; i++) {
        if (i != 0u) {
            put_s(S(","));
        }
        put_fixed3((float)(s_raw[i] - info->output_zero_point) * info->output_scale);
    }
    put_s(S("]\r\n"));
}

static int image_ready(void) {
    if (s_db_filled != EDGEDIGIT_IMAGE_BYTES || s_db_expected != s_db_filled) {
        error_line_u(S("no complete image loaded: need db load 784 and 784 bytes, have "), s_db_filled, S(" bytes"));
        return 0;
    }
    return 1;
}

static int run_once(void) {
    int cls = edgedigit_model_invoke(s_db, s_raw);
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

static void cmd_db(char **tok, int ntok) {
    if (ntok == 3 && str_eq_s(tok[1], S("load"))) {
        uint32_t n;
        if (parse_u32(tok[2], &n) != 0 || n == 0u) {
            error_line(S("db load needs a byte count 1..784"));
            return;
        }
        if (n > EDGEDIGIT_DB_MAX) {
            error_line_u(S("db load of "), n, S(" bytes exceeds the buffer of 784 bytes"));
            return;
        }
        s_db_expected = n;
        s_db_filled = 0;
        put_s(S("m-[Expecting "));
        put_u64(n);
        put_s(S(" bytes]\r\n"));
        return;
    }
    if (ntok != 2) {
        error_line(S("db needs 'load N' or one run of hex digits"));
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
    if (!image_ready()) {
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
    line_kv(S("m-ed-backend-"), info->backend);
    line_kv(S("m-ed-model-sha256-"), info->model_sha256);
    line_ku(S("m-ed-classes-"), info->num_classes);
    line_kv(S("m-ed-output-"), info->output_kind);
    line_ku(S("m-ed-arena-bytes-"), info->arena_bytes);
    line_ku(S("m-ed-protocol-bytes-"), sizeof(s_cmd) + sizeof(s_db) + sizeof(s_raw));
    line_ku(S("m-ed-cmd-max-"), EDGEDIGIT_CMD_MAX);
    line_ku(S("m-ed-image-bytes-"), EDGEDIGIT_IMAGE_BYTES);
    line_kv(S("m-ed-counter-unit-"), edgedigit_platform_counter_unit());
}

static void cmd_ed_run(char **tok, int ntok) {
    if (ntok == 2) { /* ed-run DATA: load a whole image (hex with zero runs), then run it */
        s_db_expected = EDGEDIGIT_IMAGE_BYTES;
        s_db_filled = 0;
        if (!load_data(tok[1], 1)) {
            s_db_expected = 0;
            return;
        }
    }
    if (!image_ready()) {
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
    const edgedigit_model_info_t *info = edgedigit_model_info();
    uint32_t n = info->num_classes <= EDGEDIGIT_MAX_CLASSES ? info->num_classes : EDGEDIGIT_MAX_CLASSES;
    line_ku(S("m-ed-class-"), (uint64_t)s_last_class);
    put_s(S("m-ed-raw-["));
    for (uint32_t i = 0; i < n; i++) {
        if (i != 0u) {
            put_s(S(","));
        }
        put_i32(s_raw[i]);
    }
    put_s(S("]\r\n"));
    line_ku(S("m-ed-counter-"), c1 - c0);
    line_ku(S("m-ed-us-"), (uint32_t)(t1 - t0));
}

static void cmd_help(void) {
    put_s(S("m-help-[name% profile% timestamp% db load N% db HH..% infer N W% results% help%]\r\n"));
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
        line_kv(S("m-model-"), edgedigit_model_info()->variant);
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

void edgedigit_protocol_init(void) {
    reset_frame();
    s_db_expected = 0;
    s_db_filled = 0;
    s_last_class = -1;
    put_s(S("m-init-done\r\n"));
    put_s(S("m-ready\r\n"));
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
