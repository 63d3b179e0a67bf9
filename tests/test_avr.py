"""The Uno (ATmega328P) budget is true: the protocol + linear runner, and the protocol + native runner, built
with avr-gcc fit its SRAM, with every protocol string and every model table in flash (PROGMEM), not copied to
SRAM at start-up.

The firmware is built as an exported uno project is, minus the Arduino core: the runtime files, the linear
backend's files, the Arduino platform layer and main rendered for the uno, and in place of the Arduino
core a stub (``ARDUINO_H``/``ARDUINO_STUB``: Serial on avr-libc's polled UART, micros from Timer1) whose
RAM and code are covered by stated allowances. ``measure`` returns the figures that ``boards/uno.toml``'s
``[runtime.linear]`` comes from; ``python tests/test_avr.py [SRC_DIR]`` prints them (SRC_DIR: an
exported project's ``src/``; default: a seeded random model of rfe-lr's shape).

The native backend: ``measure_native`` builds the same way a native project for the uno (a seeded MLP with the
search's input downsampling: AVERAGE_POOL_2D 2x2, RESHAPE, FULLY_CONNECTED, SOFTMAX) and a project whose graph
uses every kernel of ``edgedigit_kernels.c`` (CONV_2D, DEPTHWISE_CONV_2D, MAX/AVERAGE_POOL_2D, FULLY_CONNECTED,
SOFTMAX); ``[runtime.native]`` of ``boards/uno.toml`` comes from them: ``python tests/test_avr.py --native``.
``python tests/test_avr.py --simavr PROJECT/src MODEL.tflite [N]`` runs an exported native uno project on N
MNIST test images in simavr and compares its raw outputs with host TFLM's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from edgedigit.codegen.linear import generate, tables_bytes
from edgedigit.core.paths import templates_dir
from edgedigit.targets.boards import load_board
from helpers import random_fixed_lr

pytestmark = pytest.mark.tool

RUNTIME = templates_dir() / "runtime"
MCU = "atmega328p"

# The Arduino core's share, not in the measured build: HardwareSerial (64 B RX + 64 B TX rings, the object
# and its vtable), Timer0's millis/micros counters; ~2 KB of code (init, Serial, Print, wiring).
CORE_RAM = 180
CORE_FLASH = 2048
# Stack on top of the measured deepest call chain: the worst interrupt frame (the USART and Timer0 ISRs
# push ~16-24 B) and the core's Serial.write -> Print::write -> HardwareSerial::write below
# edgedigit_platform_write (~24 B), which the polled-UART stand-in does not have.
CORE_STACK = 32 + 24
# The I/O buffers export's budget counts besides the board's runtime figure (backends.LinearBackend): the loaded
# image and the runner's int32 class scores.
IO_BYTES = 784 + 4 * 10

# The part of the Arduino core the uno's platform layer and main use, declared as the core declares it.
ARDUINO_H = r"""
#ifndef ARDUINO_H_STUB
#define ARDUINO_H_STUB
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
class HardwareSerial {
  public:
    void begin(unsigned long baud);
    int available(void);
    int read(void);
    size_t write(const uint8_t *data, size_t len);
    operator bool() const { return true; }
};
extern HardwareSerial Serial;
unsigned long micros(void);
unsigned long millis(void);
void setup(void);
void loop(void);
#endif
"""

# A stand-in for the core: polled USART0 at 115200 baud, Timer1 for micros, and the core's main().
ARDUINO_STUB = r"""
#include <avr/io.h>
#include "Arduino.h"

HardwareSerial Serial;

void HardwareSerial::begin(unsigned long baud) {
    (void)baud;
    UBRR0 = 16; /* 115200 baud at 16 MHz with U2X */
    UCSR0A = _BV(U2X0);
    UCSR0B = _BV(RXEN0) | _BV(TXEN0);
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
    TCCR1B = _BV(CS11); /* 2 MHz: 0.5 us per tick */
}
int HardwareSerial::available(void) { return (UCSR0A & _BV(RXC0)) ? 1 : 0; }
int HardwareSerial::read(void) { return available() ? (int)UDR0 : -1; }
size_t HardwareSerial::write(const uint8_t *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        while (!(UCSR0A & _BV(UDRE0))) {
        }
        UDR0 = data[i];
    }
    return len;
}

static uint32_t s_high;
static uint16_t s_last;
unsigned long micros(void) {
    uint16_t now = TCNT1;
    if (now < s_last) {
        s_high += 0x10000u;
    }
    s_last = now;
    return (s_high + now) >> 1;
}
unsigned long millis(void) { return micros() / 1000u; }

int main(void) {
    setup();
    for (;;) {
        loop();
    }
}
"""


def write_project(d: Path, src: Path | None = None, files: dict[str, str] | None = None) -> Path:
    """The uno project's sources (from ``src``, an exported project's src/, or the backend's ``files``, default
    the linear backend of a seeded model; platform files rendered for the uno) + the core stub."""
    from edgedigit.codegen.render import render

    d.mkdir(parents=True, exist_ok=True)
    for f in RUNTIME.iterdir():
        shutil.copy(f, d / f.name)
    if src is None:
        if files is None:
            files = generate(random_fixed_lr(), variant="rfe-lr", source_name="x", sha256="0" * 64)
        for name, text in files.items():
            (d / name).write_text(text)
        platform = templates_dir() / "platform" / "arduino" / "src"
        for t in sorted(platform.glob("*.j2")):
            text = render(f"platform/arduino/src/{t.name}", board=load_board("uno").as_dict(), banner_c="/* */")
            (d / t.name.removesuffix(".j2")).write_text(text)
    else:
        for f in src.iterdir():
            shutil.copy(f, d / f.name)
    (d / "Arduino.h").write_text(ARDUINO_H)
    (d / "arduino_stub.cpp").write_text(ARDUINO_STUB)
    return d


def uno_defines() -> list[str]:
    """The -D flags of boards/uno.toml's build_flags (what the real build compiles the protocol with)."""
    return [f for f in load_board("uno").platformio.build_flags if f.startswith("-D")]


def build(d: Path, code_only: bool = False) -> Path:
    """avr-gcc/avr-g++ -Os for the ATmega328P, as PlatformIO's atmelavr does (unused sections dropped);
    returns the ELF. ``code_only``: link with 64 KB of data memory (to measure the code of a model whose
    arena does not fit the 2 KB)."""
    mcu = [f"-mmcu={MCU}", "-Os", "-ffunction-sections", "-fdata-sections"]
    warn = ["-Wall", "-Wextra", "-Werror", "-I."]
    objects = []
    for f in sorted([*d.glob("*.c"), *d.glob("*.cpp")]):
        cc = ["avr-gcc", "-std=gnu11"] if f.suffix == ".c" else ["avr-g++", "-std=gnu++11", "-fno-exceptions",
                                                                  "-fno-threadsafe-statics"]
        subprocess.run([*cc, *mcu, *warn, *uno_defines(), "-c", f.name, "-o", f"{f.name}.o"],
                       cwd=d, check=True, capture_output=True, text=True)
        objects.append(f"{f.name}.o")
    elf = d / "firmware.elf"
    big = ["-Wl,--defsym=__DATA_REGION_LENGTH__=0x10000"] if code_only else []
    subprocess.run(["avr-g++", *mcu, "-Wl,--gc-sections", *big, *objects, "-o", elf.name],
                   cwd=d, check=True, capture_output=True, text=True)
    return d / elf.name


def sizes(elf: Path) -> dict[str, int]:
    """Section sizes from avr-size -A (.text holds the code and the PROGMEM data)."""
    out = subprocess.run(["avr-size", "-A", str(elf)], check=True, capture_output=True, text=True).stdout
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\.\w+)\s+(\d+)\s+\d+", out, re.M)}


def section_bytes(elf: Path, section: str) -> bytes:
    """The raw contents of one section (empty when the ELF has none)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "section.bin"
        subprocess.run(["avr-objcopy", "-O", "binary", f"--only-section={section}", str(elf), str(out)],
                       check=True, capture_output=True)
        return out.read_bytes()


def protocol_literals() -> list[str]:
    """Every string literal of edgedigit_protocol.c, C escapes resolved."""
    text = (RUNTIME / "edgedigit_protocol.c").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"^#include.*$", "", text, flags=re.M)
    raw = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
    return [s.encode().decode("unicode_escape") for s in raw]


def call_graph(elf: Path) -> tuple[dict[str, int], dict[str, set[tuple[str, int]]]]:
    """From the disassembly: each function's stack bytes (its pushes and its frame: the sbiw/subi on the frame
    pointer between reading SP into it and writing it back, not the ones that address locals past 63 bytes
    later) and its callees with the bytes each transfer pushes (2 for a call, 0 for a tail jump)."""
    dis = subprocess.run(["avr-objdump", "-d", str(elf)], check=True, capture_output=True, text=True).stdout
    frames: dict[str, int] = {}
    calls: dict[str, set[tuple[str, int]]] = {}
    fn = None
    framing = False  # between "in r28, 0x3d" (Y = SP) and "out 0x3d, r28" (SP = Y)
    for line in dis.splitlines():
        head = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if head:
            fn = head[1]
            frames[fn], calls[fn] = 0, set()
            framing = False
            continue
        if fn is None:
            continue
        if re.search(r"\tpush\t", line):
            frames[fn] += 1
        if re.search(r"\tin\tr28, 0x3d", line):
            framing = True
        elif re.search(r"\tout\t0x3d, r28", line):
            framing = False
        alloc = re.search(r"\t(?:sbiw\tr28, 0x|subi\tr28, 0x)([0-9A-Fa-f]+)", line)
        if alloc and framing:
            frames[fn] += int(alloc[1], 16)
        # a call pushes a 2 B return address; a jump to another function's entry is a tail call
        # (counted on top of the caller's frame: an over-estimate of at most that frame)
        call = re.search(r"\t(r?call|r?jmp)\t.*<([^>+]+)>", line)
        if call and not (call[1].endswith("jmp") and call[2] == fn):
            calls[fn].add((call[2], 2 if call[1].endswith("call") else 0))
    return frames, calls


def max_stack(elf: Path, root: str = "main") -> tuple[int, list[str]]:
    """Deepest stack below ``root`` over the static call graph, and the path that reaches it. No recursion
    in this code (one is an error)."""
    frames, calls = call_graph(elf)

    def deepest(f: str, seen: tuple[str, ...]) -> tuple[int, list[str]]:
        best: tuple[int, list[str]] = (0, [])
        for g, ret in calls.get(f, ()):
            if g == f and f.startswith("__"):
                # avr-libc's float routines share tails: a call into the routine's own entry from its
                # tail, one level deep (counted once more)
                best = max(best, (frames[f] + 2, []))
                continue
            if g in seen:
                raise AssertionError(f"recursion through {g}: the stack depth is unbounded")
            d, path = deepest(g, (*seen, g))
            if d + ret > best[0]:
                best = (d + ret, path)
        return frames.get(f, 0) + best[0], [f, *best[1]]

    depth, path = deepest(root, (root,))
    return depth + (2 if root == "main" else 0), path  # main's own return address (the start-up code calls it)


def measure(src: Path | None = None) -> dict[str, int]:
    """Build and measure; figures in bytes (``static_ram`` = .data + .bss, ``flash`` = .text + .data)."""
    with tempfile.TemporaryDirectory() as tmp:
        elf = build(write_project(Path(tmp) / "avr", src))
        s = sizes(elf)
        stack, _ = max_stack(elf)
    tables = tables_bytes(random_fixed_lr()) if src is None else None
    return {"text": s.get(".text", 0), "data": s.get(".data", 0), "bss": s.get(".bss", 0),
            "static_ram": s.get(".data", 0) + s.get(".bss", 0), "flash": s.get(".text", 0) + s.get(".data", 0),
            "stack": stack, "lr_tables": tables if tables is not None else -1}


@pytest.fixture(scope="module")
def avr_elf(tmp_path_factory):
    require_tool("avr-gcc")
    return build(write_project(tmp_path_factory.mktemp("avr")))


def test_no_protocol_string_in_sram(avr_elf):
    data = section_bytes(avr_elf, ".data")
    flash = section_bytes(avr_elf, ".text")
    literals = [s for s in protocol_literals() if len(s) >= 4]
    assert len(literals) > 40  # the parser above found the protocol's strings
    in_sram = [s for s in literals if s.encode() in data]
    assert in_sram == []
    assert [s for s in literals if s.encode() + b"\0" not in flash] == []


def test_static_ram_and_stack_fit_the_uno(avr_elf):
    uno = load_board("uno")
    s = sizes(avr_elf)
    static_ram = s[".data"] + s[".bss"]
    stack, path = max_stack(avr_elf)
    # the 784 B image and the frame buffer are the protocol's; the rest must stay small
    assert 784 + 131 < static_ram < 784 + 131 + 400
    assert path[0] == "main" and "edgedigit_protocol_poll" in path and 40 < stack < 400
    need = static_ram + CORE_RAM + stack + CORE_STACK
    assert need <= uno.ram_bytes, f"{need} B > {uno.ram_bytes} B"
    # the board file's estimate plus the I/O buffers the budget adds (the 784-byte image, 10 int32 scores)
    # covers the measurement (it is what export's budget check uses)
    assert uno.runtime["linear"].ram + IO_BYTES >= need
    flash = s[".text"] + s[".data"] + CORE_FLASH
    assert flash <= uno.runtime["linear"].flash + tables_bytes(random_fixed_lr())
    assert flash <= uno.flash_bytes


def test_the_stack_walk_covers_the_model_runner_below_the_protocol(avr_elf):
    """main reaches the runner's invoke through the protocol in the graph, and the bound from main covers
    the bound from each step (a broken disassembly parse would lose the edges and give ~0 B)."""
    _, calls = call_graph(avr_elf)
    reached, todo = {"main"}, ["main"]
    while todo:
        for g, _ in calls.get(todo.pop(), ()):
            if g not in reached:
                reached.add(g)
                todo.append(g)
    assert {"edgedigit_protocol_poll", "edgedigit_protocol_feed", "edgedigit_model_invoke",
            "edgedigit_platform_write"} <= reached
    whole, _ = max_stack(avr_elf)
    for step in ("edgedigit_protocol_feed", "edgedigit_model_invoke"):
        part, path = max_stack(avr_elf, step)
        assert path[0] == step and 0 < part < whole


# A scripted session for the emulator: the protocol runs on the emulated ATmega328P (simavr) and on the host
# from the same sources and the same script; both transcripts must be equal line for line. On AVR the
# stack is painted first and its high-water mark printed last (not part of the protocol).
SESSION_MAIN = r"""
#include <stdint.h>
#include "edgedigit_model.h"
#include "edgedigit_platform.h"
#include "edgedigit_protocol.h"
#include "edgedigit_rom.h"
#include "session_script.h"

#if defined(__AVR__)
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
extern uint8_t __heap_start;
static void out(char c) {
    while (!(UCSR0A & _BV(UDRE0))) {
    }
    UDR0 = (uint8_t)c;
}
#else
#include <stdio.h>
static void out(char c) { putchar(c); }
#endif

static uint32_t s_at;
void edgedigit_platform_init(void) {
#if defined(__AVR__)
    UBRR0 = 16;
    UCSR0A = _BV(U2X0);
    UCSR0B = _BV(TXEN0);
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
#endif
}
int edgedigit_platform_read_char(void) {
    if (s_at >= sizeof kScript - 1u) {
        return -1;
    }
    return (unsigned char)EDGEDIGIT_ROM_CHAR(&kScript[s_at++]);
}
void edgedigit_platform_write(const char *data, size_t len) {
    while (len-- > 0u) {
        out(*data++);
    }
}
uint32_t edgedigit_platform_micros(void) { return 1000u; }
uint64_t edgedigit_platform_counter(void) { return 0u; }
const char *edgedigit_platform_counter_unit(void) { return "us"; }
const char *edgedigit_platform_name(void) { return "uno"; }

int main(void) {
#if defined(__AVR__)
    uint8_t *p = &__heap_start;
    while (p < (uint8_t *)SP - 8) {
        *p++ = 0xA5;
    }
#endif
    edgedigit_platform_init();
    edgedigit_protocol_init(edgedigit_model_init());
    edgedigit_protocol_poll();
#if defined(__AVR__)
    uint8_t *used = &__heap_start;
    while (*used == 0xA5) {
        used++;
    }
    uint16_t depth = (uint16_t)(RAMEND + 1 - (uint16_t)used);
    char line[24] = "m-stack-[";
    int n = 9;
    char digits[6];
    int k = 0;
    do {
        digits[k++] = (char)('0' + depth % 10u);
        depth /= 10u;
    } while (depth != 0u);
    while (k > 0) {
        line[n++] = digits[--k];
    }
    line[n++] = ']';
    line[n++] = '\r';
    line[n++] = '\n';
    edgedigit_platform_write(line, (size_t)n);
    while (!(UCSR0A & _BV(TXC0))) {
    }
    cli();
    sleep_mode();
#endif
    return 0;
}
"""


def session_script(seed: int = 1) -> str:
    """Every command kind, good and bad, on a seeded random image (64-byte db frames, the uno's limit)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, 784).astype(np.uint8)
    image[rng.random(784) < 0.6] = 0
    cmds = ["help", "name", "profile", "ed-info", "results", "infer 1", "db load 784"]
    cmds += [f"db {image[i:i + 64].tobytes().hex()}" for i in range(0, 784, 64)]
    cmds += ["infer 2 1", "results", "ed-run", "ed-echo abc", "db load 785", "db zz", "bogus", "x" * 140, ""]
    zeros = "".join(f"z{min(n, 256) - 1:02x}" for n in [256, 256, 272])  # 784 zero bytes as zero runs
    cmds += [f"ed-run {zeros}", "ed-run 00"]
    return "".join(c + "%" for c in cmds)


def write_session(d: Path) -> Path:
    """The runtime + linear runner + SESSION_MAIN + the script as a C string in read-only memory."""
    d.mkdir(parents=True, exist_ok=True)
    for f in RUNTIME.iterdir():
        shutil.copy(f, d / f.name)
    for name, text in generate(random_fixed_lr(), variant="rfe-lr", source_name="x", sha256="0" * 64).items():
        (d / name).write_text(text)
    script = session_script()
    (d / "session_script.h").write_text('#include "edgedigit_rom.h"\nstatic const char kScript[] EDGEDIGIT_ROM = "'
                                        + script + '";\n')
    (d / "session_main.c").write_text(SESSION_MAIN)
    return d


LINEAR_SESSION = ["session_main.c", "edgedigit_protocol.c", "edgedigit_model_linear.c"]


def run_session_avr(d: Path, sources: list[str] | None = None) -> list[str]:
    """Build for the ATmega328P and run in simavr; the device's lines (simavr echoes the UART on stderr,
    coloured, CR LF shown as '..')."""
    sources = sources or LINEAR_SESSION
    subprocess.run(["avr-gcc", f"-mmcu={MCU}", "-Os", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections",
                    "-std=gnu11", "-Wall", "-Wextra", "-Werror", *uno_defines(),
                    *sources, "-o", "session.elf"], cwd=d, check=True, capture_output=True, text=True)
    out = subprocess.run(["simavr", "-m", MCU, "-f", "16000000", "session.elf"], cwd=d, capture_output=True,
                         text=True, errors="replace", timeout=120).stderr
    out = re.sub(r"\x1b\[[0-9;]*m", "", out)
    return [ln[:-2] for ln in out.splitlines() if ln.endswith("..") and re.match(r"^[me]-", ln)]


def run_session_host(d: Path, sources: list[str] | None = None) -> list[str]:
    """The same session built with the host's gcc."""
    sources = sources or LINEAR_SESSION
    subprocess.run(["gcc", "-O1", "-std=c11", "-Wall", "-Wextra", "-Werror", *uno_defines(), *sources, "-o",
                    "session"], cwd=d, check=True, capture_output=True, text=True)
    out = subprocess.run([str(d / "session")], capture_output=True, timeout=60).stdout.decode()
    assert out.endswith("\r\n")
    return out[:-2].split("\r\n")


def test_the_protocol_answers_the_same_on_the_atmega328p_and_the_host(tmp_path):
    """Strings read from flash on AVR give byte-identical answers; the measured stack fits the estimate."""
    require_tool("avr-gcc")
    require_tool("simavr")
    d = write_session(tmp_path / "session")
    host = run_session_host(d)
    avr = run_session_avr(d)
    assert avr[-1].startswith("m-stack-[")
    stack = int(avr[-1][len("m-stack-["):-1])
    assert avr[:-1] == host
    assert host.count("m-ready") == session_script().count("%")  # nothing printed at boot
    assert "m-ed-protocol-[2]" in host and "m-ed-cmd-max-[131]" in host and "m-ed-platform-[uno]" in host
    assert "e-[command longer than 131 bytes discarded]" in host
    assert "e-[db load of 785 bytes exceeds the model's input of 784 bytes]" in host
    # the boot CRC-32 read the linear tables from flash (PROGMEM) and equals the host's over the same tables
    from edgedigit.codegen.linear import model_data
    from edgedigit.codegen.runner import crc32

    assert f"m-ed-model-crc32-[{crc32(model_data(random_fixed_lr())):08x}]" in host
    # m-results: the softmax of the logits (non-negative, summing to ~1, for the MLPerf runner)
    results = [ln for ln in host if ln.startswith("m-results-[")]
    assert results and all(abs(sum(map(float, r[11:-1].split(","))) - 1) < 0.01 for r in results)
    assert host.count("m-infer-done") == 1 and host.count("m-load-done") == 1
    # the painted high-water mark is within the static call-graph bound of the same ELF (the walk is sound)
    static_bound, _ = max_stack(d / "session.elf")
    assert 100 < stack <= static_bound


# ---- the native backend on the Uno -------------------------------------------------------------------------

# A variant name as long as the search's promoted ones (the runner's info strings are in SRAM).
NATIVE_VARIANT = "search-uno-10"
# The MLP the search offers the Uno: the image averaged over 2x2 blocks (14 x 14 = 196 inputs), one hidden layer.
UNO_MLP = {"family": "mlp", "layers": [16], "downsample": 2, "dropout": 0.0}
# Every kernel of edgedigit_kernels.c: CONV_2D, DEPTHWISE_CONV_2D, MAX/AVERAGE_POOL_2D, FULLY_CONNECTED, SOFTMAX.
ALL_KERNELS = {"family": "conv", "stages": [{"width": 4, "kernel": 3, "separable": False},
                                            {"width": 8, "kernel": 3, "separable": True}],
               "pool": "max", "head": "gap", "dropout": 0.0}


def native_model(folder: Path, arch: dict | None = None, seed: int = 0) -> Path:
    """A seeded int8 model of the search space (default :data:`UNO_MLP`), briefly fitted on random images and
    converted as the search converts a trial (full int8, per-tensor Dense)."""
    from edgedigit.models import zoo
    from edgedigit.models.quantize import convert_int8
    from edgedigit.models.train import seed_everything

    seed_everything(seed)
    rng = np.random.default_rng(seed)
    x = (rng.random((128, 28, 28)) ** 3).astype(np.float32)
    m = zoo.build_from_spec(arch or UNO_MLP, "uno")
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(x, rng.integers(0, 10, len(x)), epochs=2, verbose=0)
    path = folder / "model_int8.tflite"
    path.write_bytes(convert_int8(m, x[:64], "per-tensor"))
    return path


def native_files(tflite: Path) -> tuple[dict[str, str], list[bytes]]:
    """The native backend's src/ files for the uno (as export generates them) and the model data the boot
    CRC covers (the input table and every constant array)."""
    from edgedigit.core.graph import load_graph
    from edgedigit.targets.backends import BACKENDS, ModelSource

    graph = load_graph(tflite)
    src = ModelSource(NATIVE_VARIANT, "neural", tflite, graph.sha256, tflite.name, None, graph)
    backend = BACKENDS["native"]
    uno = load_board("uno")
    files = backend.generate(uno, src, backend.requirement(uno, src))
    return {k: v if isinstance(v, str) else v.decode() for k, v in files.items()}, backend.model_data(src)


def measure_native(tflite: Path, code_only: bool = False) -> dict[str, int]:
    """Build the native uno project of ``tflite`` and measure it (see :func:`measure`); ``tables`` is the model
    data the budget counts per model, ``arena`` the model's activation arena, both in the ELF."""
    from edgedigit.codegen import native
    from edgedigit.core.graph import load_graph

    files, data = native_files(tflite)
    with tempfile.TemporaryDirectory() as tmp:
        elf = build(write_project(Path(tmp) / "avr", files=files), code_only)
        s = sizes(elf)
        stack, _ = max_stack(elf)
    program = native.prepare(load_graph(tflite), input_in_place=load_board("uno").runtime["native"].input_in_arena)
    return {"text": s.get(".text", 0), "data": s.get(".data", 0), "bss": s.get(".bss", 0),
            "static_ram": s.get(".data", 0) + s.get(".bss", 0), "flash": s.get(".text", 0) + s.get(".data", 0),
            "stack": stack, "tables": sum(len(b) for b in data), "arena": program.arena_bytes,
            "io": 0 if program.input_in_place else 784}


def native_runtime(m: dict[str, int]) -> dict[str, int]:
    """What ``[runtime.native]`` covers of a measured native build: flash without the model data, RAM without
    the arena and a separate 784-byte image buffer if any (the budget counts both per model), core allowances
    added."""
    return {"flash": m["flash"] - m["tables"] + CORE_FLASH,
            "ram": m["static_ram"] - m["arena"] - m["io"] + CORE_RAM + m["stack"] + CORE_STACK}


@pytest.fixture(scope="module")
def uno_mlp(tmp_path_factory):
    require_tool("avr-gcc")
    return native_model(tmp_path_factory.mktemp("uno-mlp"))


def test_native_tables_stay_in_flash_and_the_runtime_figure_covers_the_build(uno_mlp, tmp_path):
    """Every constant table of a native MLP (weights, biases, multipliers, shifts, the input table, the op
    parameters) is in .text (flash), none in .data (copied to SRAM); the board's [runtime.native] covers the
    measured build, and the export budget judges the model to fit the Uno."""
    from edgedigit.core.graph import load_graph
    from edgedigit.targets.backends import BACKENDS, ModelSource

    files, data = native_files(uno_mlp)
    elf = build(write_project(tmp_path / "avr", files=files))
    ram, flash = section_bytes(elf, ".data"), section_bytes(elf, ".text")
    s = sizes(elf)
    big = [b for b in data if len(b) >= 16]
    assert len(big) >= 5  # the input table, two weight matrices, the biases and multipliers of the hidden layer
    assert [len(b) for b in big if b in ram] == []
    assert [len(b) for b in big if b not in flash] == []
    # .data holds only the runner's and platform's strings and state: no table
    assert s[".data"] < 200
    m = measure_native(uno_mlp)
    rt = native_runtime(m)
    uno = load_board("uno")
    assert rt["flash"] <= uno.runtime["native"].flash and rt["ram"] <= uno.runtime["native"].ram
    graph = load_graph(uno_mlp)
    req = BACKENDS["native"].requirement(uno, ModelSource("m", "neural", uno_mlp, graph.sha256, "m", None, graph))
    assert req.model_ram == 0 and req.model_flash == m["tables"] and req.arena == m["arena"]
    assert req.fits and m["flash"] + CORE_FLASH <= req.flash
    assert m["static_ram"] + CORE_RAM + m["stack"] + CORE_STACK <= req.ram <= uno.ram_bytes
    # each further layer's parameters and call are counted: a three-hidden-layer MLP's build is covered too
    deeper = native_model(tmp_path, {**UNO_MLP, "layers": [16, 16, 16]})
    m = measure_native(deeper)
    graph = load_graph(deeper)
    req = BACKENDS["native"].requirement(uno, ModelSource("d", "neural", deeper, graph.sha256, "d", None, graph))
    assert req.detail["kernel_calls"] == 6 and req.runtime_flash == rt["flash"] + 2 * uno.runtime["native"].flash_per_call
    assert m["flash"] + CORE_FLASH <= req.flash and m["tables"] == req.model_flash


def write_native_session(d: Path, tflite: Path | None, images: np.ndarray, src: Path | None = None) -> Path:
    """The runtime + the native runner of ``tflite`` (or the files of an exported project's ``src``) +
    SESSION_MAIN, scripted: ed-info, then each image loaded in 64-byte db frames and run with ed-run."""
    d.mkdir(parents=True, exist_ok=True)
    for f in (src or RUNTIME).iterdir():
        shutil.copy(f, d / f.name)
    if src is None:
        files, _ = native_files(tflite)
        for name, text in files.items():
            (d / name).write_text(text)
    cmds = ["ed-info"]
    for image in images:
        cmds += ["db load 784", *[f"db {image[i:i + 64].tobytes().hex()}" for i in range(0, 784, 64)], "ed-run"]
    (d / "session_script.h").write_text('#include "edgedigit_rom.h"\nstatic const char kScript[] EDGEDIGIT_ROM = "'
                                        + "".join(c + "%" for c in cmds) + '";\n')
    (d / "session_main.c").write_text(SESSION_MAIN)
    return d


def test_a_native_mlp_on_the_atmega328p_equals_the_host_and_tflm(uno_mlp, tmp_path):
    """The native MLP runs on the emulated ATmega328P (simavr) over the serial protocol: its raw int8 outputs
    equal host TFLM's element for element, its transcript the host build's line for line, and its boot CRC-32
    (read from flash) the host's over the same tables."""
    require_tool("simavr")
    from edgedigit.codegen.runner import crc32
    from edgedigit.core.graph import load_graph
    from edgedigit.core.int8 import input_lut, io_spec
    from edgedigit.runtimes import run_tflm

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, 784)).astype(np.uint8)  # the script is in flash too: three fit
    images[rng.random(images.shape) < 0.6] = 0
    d = write_native_session(tmp_path / "session", uno_mlp, images)
    sources = sorted(f.name for f in d.glob("*.c"))
    host = run_session_host(d, sources)
    avr = run_session_avr(d, sources)
    assert avr[-1].startswith("m-stack-[")
    assert avr[:-1] == host
    spec = io_spec(load_graph(uno_mlp))
    x = input_lut(spec.input_scale, spec.input_zero_point)[images].reshape(len(images), 28, 28)
    expected = np.asarray(run_tflm(uno_mlp, x)).reshape(len(images), -1)
    raw = [[int(v) for v in ln[len("m-ed-raw-["):-1].split(",")] for ln in avr if ln.startswith("m-ed-raw-[")]
    assert len(raw) == len(images) and np.array_equal(np.array(raw), expected)
    assert len({tuple(r) for r in raw}) > 1  # the images give different outputs: the comparison can fail
    _, data = native_files(uno_mlp)
    assert f"m-ed-model-crc32-[{crc32(data):08x}]" in avr and "m-ed-backend-[native]" in avr
    stack = int(avr[-1][len("m-stack-["):-1])
    static_bound, _ = max_stack(d / "session.elf")
    assert 100 < stack <= static_bound


def print_native_figures() -> None:
    """The figures [runtime.native] of boards/uno.toml comes from: the Uno MLP and every kernel."""
    with tempfile.TemporaryDirectory() as tmp:
        for label, arch in (("mlp path (AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX)", UNO_MLP),
                            ("every kernel of edgedigit_kernels.c", ALL_KERNELS)):
            folder = Path(tmp) / label.split()[0]
            folder.mkdir()
            m = measure_native(native_model(folder, arch), code_only=arch is ALL_KERNELS)
            print(f"{label}:")
            for k, v in {**m, **{f"runtime_{k}": v for k, v in native_runtime(m).items()}}.items():
                print(f"  {k}: {v:,}")


def run_exported(src: Path, tflite: Path, count: int) -> None:
    """An exported native uno project's src/ on the emulated ATmega328P: the first ``count`` MNIST test images
    (EDGEDIGIT_DATA), one simavr session each (the script is in flash beside the model), raw outputs printed
    against host TFLM's and host gcc's build of the same session."""
    import os

    from edgedigit.core.graph import load_graph
    from edgedigit.core.int8 import input_lut, io_spec
    from edgedigit.models.data import load_dataset
    from edgedigit.runtimes import run_tflm

    ds = load_dataset(os.environ["EDGEDIGIT_DATA"])
    images = np.round(ds.x_test[:count].reshape(count, 784) * 255).astype(np.uint8)
    spec = io_spec(load_graph(tflite))
    x = input_lut(spec.input_scale, spec.input_zero_point)[images].reshape(count, 28, 28)
    expected = np.asarray(run_tflm(tflite, x)).reshape(count, -1)
    same = same_host = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            d = write_native_session(Path(tmp) / str(i), None, images[i:i + 1], src)
            sources = ["session_main.c", *sorted(f.name for f in src.glob("*.c"))]
            avr, host = run_session_avr(d, sources), run_session_host(d, sources)
            raw = [int(v) for ln in avr if ln.startswith("m-ed-raw-[") for v in ln[len("m-ed-raw-["):-1].split(",")]
            same += raw == expected[i].tolist()
            same_host += avr[:-1] == host
            print(f"image {i} (label {ds.y_test[i]}): simavr {raw} TFLM {expected[i].tolist()} "
                  f"{'equal' if raw == expected[i].tolist() else 'DIFFERENT'}; {avr[-1]}")
    print(f"{same}/{count} images: simavr raw outputs equal host TFLM's element for element; {same_host}/{count} "
          "transcripts equal the host gcc build's line for line")


if __name__ == "__main__" and sys.argv[1:] == ["--native"]:
    print_native_figures()
elif __name__ == "__main__" and sys.argv[1:2] == ["--simavr"]:
    run_exported(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 10)
elif __name__ == "__main__":
    figures = measure(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    figures.update(core_ram=CORE_RAM, core_flash=CORE_FLASH, core_stack=CORE_STACK, io_buffers=IO_BYTES,
                   ram_needed=figures["static_ram"] + CORE_RAM + figures["stack"] + CORE_STACK)
    figures["runtime_ram_without_io"] = figures["ram_needed"] - IO_BYTES
    if figures["lr_tables"] >= 0:
        figures["runtime_flash_without_tables"] = figures["flash"] - figures["lr_tables"] + CORE_FLASH
    for k, v in figures.items():
        print(f"{k}: {v:,}")
