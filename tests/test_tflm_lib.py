"""TFLM from a source tree (edgedigit.targets.tflm_lib): what the three shipped trees offer, which sources a
model's build compiles, the cache key, the tflm.mk recipe, and the tflm backend on qemu-m4/host exported
from it (nothing is compiled here: test_tflm_firmware.py builds and runs)."""

from __future__ import annotations

import json

import pytest

from conftest import require_tree
from edgedigit.core.errors import BoardError, EdgeDigitError, UnsupportedOpError
from edgedigit.core.graph import load_graph
from edgedigit.targets import tflm_lib
from edgedigit.targets.backends import default_backend
from edgedigit.targets.boards import load_board
from edgedigit.targets.export import LOCK_FILE, export
from helpers import TINY

CNN_OPS = frozenset({"RESHAPE", "CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"})
M4, HOST = tflm_lib.TOOLCHAINS["cortex-m4"], tflm_lib.TOOLCHAINS["host"]


@pytest.fixture(scope="module")
def newest():
    return tflm_lib.inspect(require_tree("tflite-micro"))


@pytest.fixture(scope="module")
def arduino():
    return tflm_lib.inspect(require_tree("Arduino_TensorFlowLite"))


@pytest.fixture(scope="module")
def esp():
    require_tree("esp-nn")
    return tflm_lib.inspect(require_tree("esp-tflite-micro"))


def test_the_three_trees_say_what_they_offer(newest, arduino, esp):
    assert (newest.layout, newest.kernels, newest.per_channel_fully_connected) == \
        ("tflite-micro", ("cmsis-nn", "reference"), True)
    assert (arduino.layout, arduino.kernels, arduino.per_channel_fully_connected) == ("arduino", ("cmsis-nn",), False)
    assert (esp.layout, esp.kernels, esp.per_channel_fully_connected) == ("esp-tflite-micro", ("esp-nn", "reference"),
                                                                          True)
    assert esp.esp_nn == (esp.root.parent / "esp-nn").resolve()
    assert arduino.base == arduino.root / "src"
    assert newest.name.startswith("tflite-micro @ ") and arduino.name == "arduino @ 7948b85"
    for tree in (newest, arduino, esp):
        assert all(tree.provides(op) for op in CNN_OPS | {"DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"})
    # the op facts nano33ble's board file states for the Arduino library are the tree's own
    nano = load_board("nano33ble").tflm
    assert {op for op in nano.ops if arduino.provides(op)} == nano.ops
    assert not arduino.provides("BATCH_MATMUL") and "BATCH_MATMUL" not in nano.ops and newest.provides("BATCH_MATMUL")


def test_board_files_describe_the_default_tree(newest):
    for board in ("qemu-m4", "host"):
        b = load_board(board)
        assert tflm_lib.default_tree_path(b.tflm.tree).resolve() == newest.root
        assert b.tflm.ops == frozenset(tflm_lib._op_registrations(newest))
        assert b.tflm.per_channel_fully_connected is newest.per_channel_fully_connected


def test_a_models_build_compiles_the_core_and_only_its_kernels(newest, arduino):
    cmsis = tflm_lib.library(newest, "cmsis-nn", M4)
    assert cmsis.kernel_files(CNN_OPS) == [f"tensorflow/lite/micro/kernels/{k}" for k in (
        "cmsis_nn/conv.cc", "cmsis_nn/fully_connected.cc", "cmsis_nn/pooling.cc", "cmsis_nn/softmax.cc", "reshape.cc")]
    ref = tflm_lib.library(newest, "reference", M4)
    assert ref.kernel_files(CNN_OPS) == [f"tensorflow/lite/micro/kernels/{k}" for k in (
        "conv.cc", "fully_connected.cc", "pooling.cc", "reshape.cc", "softmax.cc")]
    assert set(ref.kernel_files(None)) >= set(ref.kernel_files(CNN_OPS)) and len(ref.kernel_files(None)) > 60
    core = set(cmsis.sources.core)
    assert {"tensorflow/lite/micro/micro_interpreter.cc", "tensorflow/lite/micro/kernels/conv_common.cc"} <= core
    assert not any("_test" in s or "test_helper" in s or "/cortex_m_generic/" in s for s in core)
    assert len(cmsis.sources.c) > 50 and not any(p.endswith(("_f16.c", "_f32.c")) for _, p in cmsis.sources.c)
    assert ref.sources.c == ()
    ard = tflm_lib.library(arduino, "cmsis-nn", M4)
    assert ard.kernel_files(CNN_OPS)[0] == "tensorflow/lite/micro/kernels/cmsis_nn/conv.cpp"
    assert ard.sources.shim == ("arduino_debug_log.cc",) and "-DARDUINO" in ard.defines
    with pytest.raises(BoardError, match="op resolver has no builtin NOT_AN_OP"):
        cmsis.kernel_files(frozenset({"NOT_AN_OP"}))


def test_the_cache_key_follows_tree_kernels_and_toolchain(newest, esp, monkeypatch, tmp_path):
    a = tflm_lib.library(newest, "cmsis-nn", M4)
    assert tflm_lib.library(newest, None, M4).key == a.key  # cmsis-nn is the default on Cortex-M
    keys = {a.key, tflm_lib.library(newest, "reference", M4).key, tflm_lib.library(newest, "reference", HOST).key,
            tflm_lib.library(esp, "esp-nn", HOST).key, tflm_lib.library(esp, "reference", HOST).key}
    assert len(keys) == 5
    monkeypatch.setenv("EDGEDIGIT_TFLM_CACHE", str(tmp_path))
    lib = tflm_lib.library(newest, "cmsis-nn", M4)
    assert lib.key == a.key and lib.directory == tmp_path / a.key
    assert lib.archive(None) == tmp_path / a.key / "libtflm.a"
    assert lib.archive(CNN_OPS) == lib.archive(frozenset(sorted(CNN_OPS))) != lib.archive(frozenset({"RESHAPE"}))


def test_the_cache_key_is_the_same_for_every_checkout_but_follows_shipped_headers(newest, monkeypatch, tmp_path):
    """Two checkouts of one commit share the cache (the shipped shim is keyed by content, not by path); a
    change to the shim's headers is a new key."""
    import shutil

    from edgedigit.core import paths

    key = tflm_lib.library(newest, "cmsis-nn", M4).key
    assert any("/firmware_templates/tflm_lib/signal_shim" in i for i in tflm_lib.library(newest, "cmsis-nn", M4).includes)
    copy = tmp_path / "checkout" / "firmware_templates"
    shutil.copytree(paths.templates_dir(), copy)
    monkeypatch.setattr(tflm_lib, "templates_dir", lambda: copy)
    moved = tflm_lib.library(newest, "cmsis-nn", M4)
    assert any(i.startswith(str(copy)) for i in moved.includes) and moved.key == key
    header = next(p for p in (copy / "tflm_lib" / "signal_shim").rglob("*") if p.is_file())
    header.write_bytes(header.read_bytes() + b"\n")
    assert tflm_lib.library(newest, "cmsis-nn", M4).key != key


def test_kernels_a_tree_or_target_cannot_build_are_refused(newest, arduino):
    with pytest.raises(BoardError, match=r"kernels reference cannot be built for cortex-m4 from this arduino tree "
                                         r"\(possible: cmsis-nn\)"):
        tflm_lib.library(arduino, "reference", M4)
    with pytest.raises(BoardError, match=r"kernels cmsis-nn cannot be built for host .*possible: reference"):
        tflm_lib.library(newest, "cmsis-nn", HOST)
    with pytest.raises(BoardError, match="unknown TFLM kernels 'fast'"):
        tflm_lib.library(newest, "fast", M4)
    with pytest.raises(BoardError, match="none of which builds for host"):
        tflm_lib.library(arduino, None, HOST)


def test_tflm_mk_builds_the_archive_from_cached_objects(newest):
    lib = tflm_lib.library(newest, "cmsis-nn", M4)
    mk = tflm_lib.makefile(lib, CNN_OPS)
    assert f"TFLM_LIB := {lib.archive(CNN_OPS)}" in mk and f"TFLM_DIR := {lib.directory}" in mk
    assert "TFLM_CXX := arm-none-eabi-g++" in mk and "-mcpu=cortex-m4" in mk
    flags = next(ln for ln in mk.splitlines() if ln.startswith("TFLM_CPPFLAGS := "))
    assert "-DCMSIS_NN" in flags and "-DTF_LITE_STATIC_MEMORY" in flags and f"-isystem {newest.root}" in flags
    objects = [ln.strip(" \\") for ln in mk.splitlines() if ln.startswith("    $(TFLM_DIR)/obj/")]
    assert len(objects) == len(lib.sources.core) + len(CNN_OPS) + len(lib.sources.c)
    assert "$(TFLM_DIR)/obj/tflm/tensorflow/lite/micro/kernels/cmsis_nn/conv.o" in objects
    assert "the operators CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, RESHAPE, SOFTMAX" in mk


def test_qemu_m4_exports_tflm_from_the_tree_with_native_still_first(build_dir, newest):
    board = load_board("qemu-m4")
    assert default_backend(board, "neural") == "native"
    res = export("qemu-m4", model=TINY, backend="tflm", out=build_dir / "p")
    files = {p.relative_to(res.path).as_posix() for p in res.path.rglob("*") if p.is_file()}
    assert {"tflm.mk", "Makefile", "src/edgedigit_model_tflm.cc", "src/edgedigit_op_resolver.h"} <= files
    make = (res.path / "Makefile").read_text()
    assert "include tflm.mk" in make and "$(TFLM_CPPFLAGS)" in make
    lib = tflm_lib.library(newest, "cmsis-nn", M4)
    assert f"TFLM_LIB := {lib.archive(frozenset(load_graph(TINY).op_names()))}" in (res.path / "tflm.mk").read_text()
    lock = json.loads((res.path / LOCK_FILE).read_text())["board"]["tflm"]
    assert lock["kernels"] == "cmsis-nn" and lock["key"] == lib.key and lock["layout"] == "tflite-micro"
    assert lock["per_channel_fully_connected"] is True
    ref = export("qemu-m4", model=TINY, backend="tflm", kernels="reference")
    assert ref.path.name == "tiny-tflm-reference" and ref.lock["board"]["tflm"]["kernels"] == "reference"
    assert "-DCMSIS_NN" not in (ref.path / "tflm.mk").read_text()
    native = export("qemu-m4", model=TINY)
    assert native.backend == "native" and not (native.path / "tflm.mk").exists()


def test_kernels_only_for_tflm_from_a_tree(build_dir, newest):
    with pytest.raises(EdgeDigitError, match="kernels reference: only the tflm backend .* this export is native on qemu-m4"):
        export("qemu-m4", model=TINY, backend="native", kernels="reference")
    with pytest.raises(EdgeDigitError, match="this export is tflm on esp32dev"):
        export("esp32", model=TINY, backend="tflm", kernels="reference")
    with pytest.raises(BoardError, match="kernels cmsis-nn cannot be built for host"):
        export("host", model=TINY, backend="tflm", kernels="cmsis-nn", out=build_dir / "h")
    assert not (build_dir / "h").exists()


def test_another_tree_decides_what_it_runs(build_dir, monkeypatch, arduino):
    """EDGEDIGIT_TFLM_SRC=Arduino_TensorFlowLite: its 2023 FULLY_CONNECTED computes per-channel weights wrong,
    so a per-channel model is refused on qemu-m4 as it is on nano33ble."""
    monkeypatch.setenv("EDGEDIGIT_TFLM_SRC", str(arduino.root))
    with pytest.raises(UnsupportedOpError, match=r"per channel and qemu-m4's TFLM library \(arduino @ 7948b85"):
        export("qemu-m4", model=TINY, backend="tflm")


def test_a_missing_tree_is_named_with_the_variable(build_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEDIGIT_TFLM_SRC", str(tmp_path / "nowhere"))
    with pytest.raises(UnsupportedOpError, match=r"no TFLM source tree at .*nowhere: set EDGEDIGIT_TFLM_SRC"):
        export("qemu-m4", model=TINY, backend="tflm")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("EDGEDIGIT_TFLM_SRC", str(tmp_path / "empty"))
    with pytest.raises(UnsupportedOpError, match=r"empty: not a TFLM source tree"):
        export("qemu-m4", model=TINY, backend="tflm")
    assert export("qemu-m4", model=TINY).backend == "native"  # the default never needed the tree


def test_the_stack_paint_word_is_the_firmwares():
    from edgedigit.core.paths import templates_dir
    from edgedigit.targets.devices import STACK_PAINT

    startup = (templates_dir() / "platform" / "qemu-m4" / "src" / "edgedigit_startup_m4.c").read_text()
    assert f"#define EDGEDIGIT_STACK_PAINT {STACK_PAINT:#X}u".replace("0X", "0x") in startup

