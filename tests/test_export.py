"""Export of whole projects: layout, determinism, the lock file, budgets, defaults, refusals, and the
generated projects that need no TFLM compiled (host with make/gcc, qemu-m4 with arm-none-eabi-gcc, the
Arduino platform layer against a stub Arduino.h)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess

import pytest

from conftest import require_tool
from edgedigit.core.errors import BoardError, ModelTooLargeError, NotTrainedError, UnsupportedOpError
from edgedigit.targets import export as firmware
from edgedigit.targets.boards import load_board
from edgedigit.targets.export import LOCK_FILE, export
from helpers import TINY, add_variant, read_tree


@pytest.fixture
def small_build(build_dir):
    """A build tree with a tiny neural variant (per-channel FC) and an rfe-lr."""
    add_variant(build_dir, "tiny", "neural", 0.5, TINY)
    add_variant(build_dir, "rfe-lr", "linear", 0.8)
    return build_dir


def test_project_layout(small_build):
    res = export("esp32", variant="tiny")
    assert res.path == small_build / "firmware" / "esp32dev" / "tiny-tflm"
    tree = read_tree(res.path)
    assert {"platformio.ini", "README.md", LOCK_FILE} <= set(tree)
    src = {k[4:] for k in tree if k.startswith("src/")}
    assert {"edgedigit_model.h", "edgedigit_platform.h", "edgedigit_protocol.h", "edgedigit_protocol.c",
            "edgedigit_rom.h", "edgedigit_main.cpp", "edgedigit_platform_arduino.cpp", "edgedigit_model_data.cc",
            "edgedigit_model_data.h", "edgedigit_op_resolver.h", "edgedigit_input_lut.h",
            "edgedigit_model_tflm.cc"} == src
    assert not any(k.endswith(".j2") for k in tree)
    umask = os.umask(0o022)
    os.umask(umask)
    assert (res.path / "platformio.ini").stat().st_mode & 0o777 == 0o666 & ~umask  # as any file the user writes
    assert (res.path / "src").stat().st_mode & 0o777 == 0o777 & ~umask
    assert res.path.stat().st_mode & 0o777 == 0o777 & ~umask  # not 0700 from a temporary folder
    ini = tree["platformio.ini"].decode()
    assert "[env:esp32dev]" in ini and "board = esp32dev" in ini and "framework = arduino" in ini
    assert "platform = https://github.com/pioarduino/platform-espressif32/releases/download/55.03.311/" in ini


def test_export_twice_gives_identical_bytes(small_build, tmp_path):
    first = read_tree(export("esp32", variant="tiny").path)
    second = read_tree(export("esp32", variant="tiny").path)
    elsewhere = read_tree(export("esp32", variant="tiny", out=tmp_path / "other").path)
    assert first == second == elsewhere
    uno_a = read_tree(export("uno", variant="rfe-lr").path)
    assert uno_a == read_tree(export("uno", variant="rfe-lr").path)


def test_lock_file_records_inputs_and_file_hashes(small_build):
    res = export("nano33ble", variant="tiny")
    lock = json.loads((res.path / LOCK_FILE).read_text())
    assert lock["backend"] == "native"  # nano33ble's TFLM cannot run per-channel FC: first usable backend
    assert lock["model"]["sha256"] == hashlib.sha256(TINY.read_bytes()).hexdigest()
    assert lock["model"]["source"] == "models/tiny/model_int8.tflite"
    assert lock["model"]["card"]["int8_accuracy"] == 0.5
    assert lock["board"]["id"] == "nano33ble"
    assert lock["board"]["file_sha256"] == hashlib.sha256(load_board("nano33ble").path.read_bytes()).hexdigest()
    assert lock["versions"]["edgedigit"] == lock["edgedigit"]
    files = {p.relative_to(res.path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in res.path.rglob("*") if p.is_file() and p.name != LOCK_FILE}
    assert lock["files"] == files
    assert lock["budget"]["flash"] == lock["budget"]["model_flash"] + lock["budget"]["runtime_flash"]
    assert "T" not in json.dumps(lock.get("created", ""))  # no timestamps at all
    assert not re.search(r"20\d\d-\d\d-\d\dT\d\d:", json.dumps(lock))


def test_default_variant_is_the_most_accurate_that_fits(small_build, tflite_models):
    assert export("esp32").model.name == "rfe-lr"  # 0.8 beats tiny's 0.5
    add_variant(small_build, "tiny", "neural", 0.9, TINY)
    res = export("esp32")
    assert (res.model.name, res.backend) == ("tiny", "tflm")
    add_variant(small_build, "big", "neural", 0.99, tflite_models["mlp"])
    assert firmware.default_variant(load_board("esp32")) == "big"
    # big does not fit the Uno's flash; tiny does with the native backend (its tables stay in flash, the image
    # is held once, in the arena) and is more accurate than rfe-lr
    res = export("uno")
    assert (res.model.name, res.backend) == ("tiny", "native")
    req = res.requirement
    assert req.model_ram == 0 and req.io_ram == 0 and req.arena >= 784 and req.ram <= 2_048
    assert export("uno", variant="rfe-lr").backend == "linear"


def test_default_backend_is_the_boards_first_usable_one(small_build):
    assert export("esp32", variant="tiny").backend == "tflm"
    assert export("nano33ble", variant="tiny").backend == "native"  # per-channel FC: TFLM refused
    assert export("uno", variant="rfe-lr").backend == "linear"
    assert export("esp32", variant="rfe-lr").backend == "linear"
    assert export("host", variant="rfe-lr").backend == "linear"


def test_backend_refusals_say_why(small_build):
    with pytest.raises(UnsupportedOpError, match=r"board uno does not support backend tflm .*32-bit"):
        export("uno", variant="tiny", backend="tflm")
    with pytest.raises(UnsupportedOpError, match="backend linear runs linear models and tiny is neural"):
        export("esp32", variant="tiny", backend="linear")
    with pytest.raises(UnsupportedOpError) as e:
        export("nano33ble", variant="tiny", backend="tflm")
    assert "edgedigit quantize tiny --granularity per-tensor" in str(e.value)
    with pytest.raises(BoardError, match="unknown board 'esp8266'"):
        export("esp8266", variant="tiny")
    assert not (small_build / "firmware").exists()


def test_nothing_trained(build_dir):
    with pytest.raises(NotTrainedError, match="edgedigit train"):
        export("esp32")
    with pytest.raises(NotTrainedError, match="variant 'mlp' is not trained"):
        export("esp32", variant="mlp")


def test_budget_error_names_numbers_and_what_fits(small_build, tflite_models):
    add_variant(small_build, "big", "neural", 0.99, tflite_models["mlp"])
    from edgedigit.codegen import native
    from edgedigit.core.graph import load_graph

    # the model's flash: every constant array of the generated C and the input table (what the boot CRC covers,
    # so a firmware's CRC equal to the host's shows these are exactly its bytes)
    arrays = native.model_data(native.prepare(load_graph(tflite_models["mlp"])))
    with pytest.raises(ModelTooLargeError) as e:
        export("uno", variant="big")
    msg = str(e.value)
    model_flash = sum(len(b) for b in arrays)
    assert len(arrays[0]) == 256  # the input table
    runtime = load_board("uno").runtime["native"].flash
    total = model_flash + runtime
    assert msg.startswith(f"big (native): {model_flash:,} B model + ~{runtime / 1024:.0f} KB native runtime = {total:,} B > "
                          f"uno's 32,256 B flash")
    assert msg.endswith("fits: rfe-lr, tiny")
    assert "\n" not in msg


def test_budget_is_checked_before_anything_is_rendered(small_build, tflite_models, monkeypatch):
    add_variant(small_build, "big", "neural", 0.99, tflite_models["mlp"])

    def render_project(*args, **kwargs):
        raise AssertionError("rendered before the budget check")

    monkeypatch.setattr(firmware, "render_project", render_project)
    with pytest.raises(ModelTooLargeError):
        export("uno", variant="big")
    assert not (small_build / "firmware").exists()


def test_failed_export_leaves_the_previous_project_untouched(small_build, monkeypatch):
    res = export("esp32", variant="rfe-lr")
    before = read_tree(res.path)

    def broken(path, obj):
        raise OSError("disk full")

    monkeypatch.setattr(firmware, "write_json", broken)
    with pytest.raises(OSError, match="disk full"):
        export("esp32", variant="rfe-lr")
    assert read_tree(res.path) == before
    assert [p.name for p in res.path.parent.iterdir()] == ["rfe-lr-linear"]  # no staging leftovers


def test_any_int8_tflite_by_path(build_dir, tflite_models):
    res = export("esp32", model=tflite_models["cnn"])
    assert (res.model.name, res.backend) == ("cnn", "tflm")
    assert res.path == build_dir / "firmware" / "esp32dev" / "cnn-tflm"
    assert json.loads((res.path / LOCK_FILE).read_text())["model"]["card"] is None


@pytest.mark.mnist
def test_uno_refuses_mlp_with_numbers_and_accepts_rfe_lr(trained_build):
    """Done-when of issue 3: `export --board uno --variant mlp` fails with the numbers, rfe-lr succeeds."""
    if not (trained_build / "models" / "rfe-lr" / "card.json").is_file():
        add_variant(trained_build, "rfe-lr", "linear", 0.8)  # H6's trained rfe-lr when registered, else contract-shaped
    with pytest.raises(ModelTooLargeError) as e:
        export("uno", variant="mlp")
    assert re.match(r"mlp \(native\): [\d,]{7} B model \+ ~\d+ KB native runtime = [\d,]+ B > uno's 32,256 B flash",
                    str(e.value)), str(e.value)
    assert str(e.value).endswith("fits: rfe-lr")
    res = export("uno", variant="rfe-lr")
    assert res.backend == "linear" and (res.path / "src" / "edgedigit_lr_model.h").is_file()
    assert "platform = platformio/atmelavr @ 5.2.0" in (res.path / "platformio.ini").read_text()
    assert res.requirement.fits


@pytest.mark.mnist
def test_esp32_export_of_trained_mlp(trained_build):
    res = export("esp32", variant="mlp")
    assert res.backend == "tflm"
    raw = (trained_build / "models" / "mlp" / "model_int8.tflite").read_bytes()
    assert res.requirement.model_flash == len(raw) + 256 + 3 * (784 + 10)
    assert (res.path / "src" / "edgedigit_model_data.cc").read_text().count("0x") == len(raw)


def test_host_project_builds_with_make(small_build):
    """The whole host project (protocol, host platform, LR runner) compiles with -Werror, as C and as C++."""
    cc = require_tool("make")
    res = export("host", variant="rfe-lr")
    subprocess.run([cc], cwd=res.path, check=True, capture_output=True)
    assert (res.path / "build" / "edgedigit-firmware").is_file()
    for src in (res.path / "src").glob("*.c"):
        subprocess.run(["g++", "-x", "c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", str(res.path / "src"),
                        "-c", str(src), "-o", str(res.path / "build" / (src.stem + ".cxx.o"))], check=True)


@pytest.mark.tool
def test_qemu_m4_project_builds_with_arm_gcc(small_build):
    require_tool("arm-none-eabi-gcc")
    res = export("qemu-m4", variant="rfe-lr")
    out = subprocess.run(["make"], cwd=res.path, check=True, capture_output=True, text=True).stdout
    text, data, bss = (int(v) for v in re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\w+\s+build/firmware.elf",
                                                 out, re.M).groups())
    board = load_board("qemu-m4")
    assert text + data <= res.requirement.flash <= board.flash_bytes  # the estimate is not below the real size
    assert data + bss <= res.requirement.ram


_ARDUINO_STUB = r"""
#pragma once
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
unsigned long micros(void);
unsigned long millis(void);
struct StubSerial {
    void begin(unsigned long) {}
    int available() { return 0; }
    int read() { return -1; }
    size_t write(const uint8_t *, size_t n) { return n; }
    explicit operator bool() const { return true; }
};
extern StubSerial Serial;
"""


@pytest.mark.parametrize("board", ["uno", "nano33ble", "esp32"])
def test_arduino_platform_sources_compile_against_a_stub(small_build, tmp_path, board):
    """The Arduino main and platform layer compile warning-free (g++ -Wall -Wextra -Werror) with a stub Arduino.h."""
    res = export(board, variant="rfe-lr")
    (tmp_path / "Arduino.h").write_text(_ARDUINO_STUB)
    for name in ("edgedigit_main.cpp", "edgedigit_platform_arduino.cpp"):
        subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", str(tmp_path), "-I",
                        str(res.path / "src"), "-c", str(res.path / "src" / name), "-o", str(tmp_path / f"{name}.o")],
                       check=True)
    platform = (res.path / "src" / "edgedigit_platform_arduino.cpp").read_text()
    assert f'return "{load_board(board).counter.unit}";' in platform
    assert f"#define EDGEDIGIT_BAUD {load_board(board).serial.baud}UL" in platform
