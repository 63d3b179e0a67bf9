"""Bad inputs for the reliability tests and ``benchmarks/reliability_table.py``: broken model files, broken
datasets, and how to run a CLI command on one and judge what happened.

Every case names the problem the error line must state (a regular expression). ``Outcome`` records what
a user sees: the exit code, the stderr lines, whether a traceback appeared, and which files the command
left in the build tree.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

FLIPS_PER_SEED = 8


@dataclass(frozen=True)
class Case:
    """One bad input: its category, kind (a row of the table), a label and the problem to be named."""

    kind: str
    label: str
    path: Path
    problem: str  # regex the error line must match (case-insensitive)
    may_work: bool = False  # a byte flip can leave a valid (different) model: exporting it is not a fault


@dataclass
class Outcome:
    """What one command did."""

    exit_code: int
    stderr: list[str]
    stdout: str
    traceback: bool
    left: list[str] = field(default_factory=list)  # files written under the build tree

    @property
    def message(self) -> str:
        return self.stderr[-1] if self.stderr else ""


# ---- bad models ------------------------------------------------------------------------------------------

def model_cases(dest: Path, good: Path, converted: dict[str, Path], flip_seeds: int = 10) -> list[Case]:
    """Broken copies of the int8 model ``good`` plus the wrongly converted models in ``converted``."""
    dest.mkdir(parents=True, exist_ok=True)
    raw = good.read_bytes()
    cases = []

    def put(kind: str, label: str, data: bytes, problem: str, may_work: bool = False) -> None:
        p = dest / f"{re.sub(r'[^a-z0-9]+', '_', kind)}-{len(cases)}.tflite"
        p.write_bytes(data)
        cases.append(Case(kind, label, p, problem, may_work))

    put("empty file", "0 bytes", b"", r"empty")
    for frac in (0.02, 0.25, 0.5, 0.9, 0.999):
        cut = max(8, int(len(raw) * frac))
        put("truncated", f"first {cut} of {len(raw)} bytes", raw[:cut], r"truncated|corrupted")
    put("not a flatbuffer", "text", b"this is not a model\n" * 20, r"not a TFLite flatbuffer")
    put("not a flatbuffer", "random bytes", np.random.default_rng(7).bytes(4096), r"not a TFLite flatbuffer")
    put("not a flatbuffer", "zip archive", b"PK\x03\x04" + bytes(600), r"not a TFLite flatbuffer")
    put("not a flatbuffer", "TFL3 identifier, nothing else", b"\x00\x00\x00\x00TFL3" + bytes(8),
        r"truncated|corrupted|no subgraph")
    for seed in range(flip_seeds):
        rng = np.random.default_rng(100 + seed)
        b = bytearray(raw)
        for pos in rng.integers(0, len(b), FLIPS_PER_SEED):
            b[pos] ^= int(rng.integers(1, 256))
        put("random byte flips", f"{FLIPS_PER_SEED} bytes, seed {100 + seed}", bytes(b),
            r"corrupted|truncated|not a TFLite|unsupported|invalid|not|must|has", may_work=True)
    if "float" in converted:
        put("float model where int8 is needed", "float32 weights and I/O", converted["float"].read_bytes(),
            r"int8")
    if "dynamic" in converted:
        put("float model where int8 is needed", "dynamic range (int8 weights, float I/O)",
            converted["dynamic"].read_bytes(), r"int8")
    if "uint8" in converted:
        put("uint8 input/output", "full integer, uint8 I/O", converted["uint8"].read_bytes(), r"int8|uint8")
    if "tanh" in converted:
        put("op the backend lacks", "int8 TANH", converted["tanh"].read_bytes(), r"TANH.*not supported|not supported.*TANH")
    return cases


def convert_wrong_models(dest: Path, names: tuple[str, ...] = ("float", "dynamic", "uint8", "tanh")) -> dict[str, Path]:
    """Models converted the wrong way for a microcontroller: float, dynamic range, uint8 I/O, and an int8
    model with an op (TANH) the native backend does not implement. Deterministic (fixed seeds)."""
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers as L

    dest.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(0)
    x = (np.random.default_rng(0).random((32, 28, 28)) ** 3).astype(np.float32)
    mlp = keras.Sequential([L.Flatten(batch_input_shape=(1, 28, 28)), L.Dense(16, activation="relu"), L.Dense(10)])
    tanh = keras.Sequential([L.Flatten(batch_input_shape=(1, 28, 28)), L.Dense(16, activation="tanh"), L.Dense(10)])

    def conv(model, *, opt: bool, io=None):
        c = tf.lite.TFLiteConverter.from_keras_model(model)
        if opt:
            c.optimizations = [tf.lite.Optimize.DEFAULT]
        if io is not None:
            c.representative_dataset = lambda: ([v[None]] for v in x)
            c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            c.inference_input_type = io
            c.inference_output_type = io
        return c.convert()

    how = {"float": lambda: conv(mlp, opt=False), "dynamic": lambda: conv(mlp, opt=True),
           "uint8": lambda: conv(mlp, opt=True, io=tf.uint8), "tanh": lambda: conv(tanh, opt=True, io=tf.int8)}
    out = {}
    for name in names:
        out[name] = dest / f"{name}.tflite"
        out[name].write_bytes(how[name]())
    return out


def linear_cases(dest: Path) -> list[Case]:
    """Broken rfe-lr ``model_fixed.npz`` files (COMMON contract 4), one problem each."""
    dest.mkdir(parents=True, exist_ok=True)
    good = {"pixels": np.arange(0, 700, 7, dtype=np.int32), "weights": np.ones((10, 100), np.int8),
            "bias": np.zeros(10, np.int32), "scale": np.float64(0.01)}
    cases: list[Case] = []

    def put(kind: str, label: str, problem: str, **change: np.ndarray | None) -> None:
        a = {**good, **change}
        p = _npz(dest / f"fixed-{len(cases)}.npz", **{k: v for k, v in a.items() if v is not None})
        cases.append(Case(kind, label, p, problem))

    put("linear tables", "no bias array", r"missing array .*bias", bias=None)
    put("linear tables", "weights (10, 99) for 100 pixels", r"shapes do not agree|weights must be int8 \(classes, 100\)",
        weights=np.ones((10, 99), np.int8))
    put("linear tables", "pixel index 792", r"pixel indices must be .* within 0\.\.783",
        pixels=np.arange(0, 800, 8, dtype=np.int32))
    put("linear tables", "pixels descending", r"pixel indices must be unique, ascending",
        pixels=good["pixels"][::-1].copy())
    put("linear tables", "float weights 0.5", r"must be integers|weights must be int8 .* got float64",
        weights=np.full((10, 100), 0.5))
    put("linear tables", "scale 0", r"scale must be a positive number", scale=np.float64(0))
    put("linear tables", "scale NaN", r"scale must be a positive number", scale=np.float64("nan"))
    put("linear tables", "bias near int32 max", r"overflow int32|beyond int32", bias=np.full(10, 2**31 - 1, np.int32))
    put("linear tables", "one class", r"1 classes", weights=np.ones((1, 100), np.int8), bias=np.zeros(1, np.int32))
    for label, data, problem in (("empty file", b"", r"not a readable \.npz"),
                                 ("not a zip", b"junk", r"not a readable \.npz")):
        p = dest / f"fixed-{len(cases)}.npz"
        p.write_bytes(data)
        cases.append(Case("linear tables", label, p, problem))
    return cases


# ---- bad data --------------------------------------------------------------------------------------------

def _npz(path: Path, **arrays: np.ndarray) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _good_arrays(n: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), "y_train": rng.integers(0, 10, n).astype(np.uint8),
            "x_test": rng.integers(0, 256, (n // 2, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, n // 2).astype(np.uint8)}


def _idx(data: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{data.ndim}I", *data.shape) + data.tobytes()


def data_cases(dest: Path) -> list[Case]:
    """Broken datasets: .npz files and IDX folders, one problem each."""
    dest.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def npz(kind: str, label: str, problem: str, **change: np.ndarray | None) -> None:
        a = _good_arrays()
        for k, v in change.items():
            if v is None:
                a.pop(k)
            else:
                a[k] = v
        p = _npz(dest / f"data-{len(cases)}.npz", **a)
        cases.append(Case(kind, label, p, problem))

    g = _good_arrays()
    npz("wrong shape", "x_train (40, 784)", r"shape .*expected \(N, 28, 28\)", x_train=g["x_train"].reshape(40, 784))
    npz("wrong shape", "x_test (20, 28, 28, 1)", r"shape .*expected \(N, 28, 28\)", x_test=g["x_test"][..., None])
    npz("wrong shape", "y_train (40, 1)", r"shape .*expected \(N,\)", y_train=g["y_train"][:, None])
    npz("wrong shape", "39 labels for 40 images", r"39 labels .* 40 images", y_train=g["y_train"][:39])
    npz("wrong dtype", "x_train float 0..1", r"values outside integers 0\.\.255",
        x_train=g["x_train"].astype(np.float32) / 255)
    npz("wrong dtype", "x_train strings", r"dtype .*expected uint8", x_train=g["x_train"].astype(str))
    npz("wrong dtype", "y_train float 0.5", r"dtype .*expected integer labels",
        y_train=g["y_train"].astype(np.float64) + 0.5)
    npz("labels out of range", "label 10", r"labels outside 0\.\.9", y_train=np.where(g["y_train"] == 3, 10, g["y_train"]))
    npz("labels out of range", "label -1", r"labels outside 0\.\.9", y_test=g["y_test"].astype(np.int16) - 1)
    npz("labels out of range", "label 255 (uint8)", r"labels outside 0\.\.9", y_test=np.full(20, 255, np.uint8))
    x_nan = g["x_train"].astype(np.float32)
    x_nan[0, 0, 0] = np.nan
    npz("NaN", "NaN pixel", r"NaN", x_train=x_nan)
    y_nan = g["y_test"].astype(np.float64)
    y_nan[3] = np.nan
    npz("NaN", "NaN label", r"NaN", y_test=y_nan)
    npz("missing array", "no y_test", r"missing array.*y_test", y_test=None)
    npz("empty split", "0 test images", r"empty", x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.uint8))

    def raw(kind: str, label: str, problem: str, data: bytes, suffix: str = ".npz") -> None:
        p = dest / f"data-{len(cases)}{suffix}"
        p.write_bytes(data)
        cases.append(Case(kind, label, p, problem))

    raw("empty file", "0-byte .npz", r"empty", b"")
    raw("not a dataset", "text file", r"not a \.npz", b"x_train,y_train\n1,2\n")
    good = (dest / "good.npz")
    _npz(good, **g)
    raw("not a dataset", "truncated .npz", r"not a (readable )?\.npz", good.read_bytes()[:300])

    idx = {"train-images-idx3-ubyte": (g["x_train"], 2051), "train-labels-idx1-ubyte": (g["y_train"], 2049),
           "t10k-images-idx3-ubyte": (g["x_test"], 2051), "t10k-labels-idx1-ubyte": (g["y_test"], 2049)}

    def idx_folder(kind: str, label: str, problem: str, name: str, data: bytes, gz: bool = False) -> None:
        folder = dest / f"idx-{len(cases)}"
        folder.mkdir()
        for stem, (arr, magic) in idx.items():
            (folder / stem).write_bytes(_idx(arr, magic))
        target = folder / name
        if gz:
            target.unlink()
            target = folder / f"{name}.gz"
            target.write_bytes(gzip.compress(data) if data else b"not gzip")
        else:
            target.write_bytes(data)
        cases.append(Case(kind, label, folder, problem))

    idx_folder("IDX wrong magic", "images with 2049", r"wrong IDX magic number 2049", "train-images-idx3-ubyte",
               _idx(g["x_train"], 2049))
    idx_folder("IDX wrong magic", "labels with 0x00000000", r"wrong IDX magic number 0", "t10k-labels-idx1-ubyte",
               struct.pack(">I", 0) + _idx(g["y_test"], 2049)[4:])
    idx_folder("IDX wrong length", "images 100 bytes short", r"IDX data is .* bytes but the header", "train-images-idx3-ubyte",
               _idx(g["x_train"], 2051)[:-100])
    idx_folder("IDX wrong length", "labels file of 3 bytes", r"too short for an IDX header", "t10k-labels-idx1-ubyte",
               b"\x00\x00\x08")
    idx_folder("IDX wrong length", "labels with 3 extra bytes", r"IDX data is .* bytes but the header",
               "train-labels-idx1-ubyte", _idx(g["y_train"], 2049) + b"abc")
    idx_folder("IDX corrupt gzip", "a .gz that is not gzip", r"not a valid gzip", "t10k-images-idx3-ubyte", b"", gz=True)
    return cases


# ---- running and judging ---------------------------------------------------------------------------------

def files_under(root: Path) -> set[str]:
    """Every file below ``root`` (relative paths) but the build folder's lock file (``core.lock``: not an
    output, it stays so the next writer locks the same file); empty when it does not exist."""
    from edgedigit.core.lock import LOCK_NAME

    if not root.exists():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {LOCK_NAME}


def run_cli(args: list[str], build: Path) -> Outcome:
    """Run ``edgedigit ARGS`` in-process with ``EDGEDIGIT_BUILD=build``; record output and files left."""
    from typer.testing import CliRunner

    from edgedigit.cli import app

    before = files_under(build)
    result = CliRunner().invoke(app, [str(a) for a in args], env={"EDGEDIGIT_BUILD": str(build)})
    tb = result.exception is not None and not isinstance(result.exception, SystemExit)
    # a rich progress bar's last frame is not a message (on a terminal it is redrawn in place)
    stderr = [ln for ln in result.stderr.splitlines()
              if ln.strip() and "━" not in ln and not re.search(r"\d+/\d+ \d+:\d\d:\d\d\s*$", ln)]
    if tb:
        import traceback

        stderr += traceback.format_exception(result.exception)
    return Outcome(result.exit_code, stderr, result.stdout, tb or "Traceback" in result.stderr,
                   sorted(files_under(build) - before))


def judge(outcome: Outcome, case: Case, names: list[str]) -> str | None:
    """None when the command failed the way issue 7 asks; else what is wrong.

    ``names``: strings of which at least one must be in the error line (the file or its path).
    """
    if outcome.traceback:
        return f"traceback: {outcome.stderr[-1] if outcome.stderr else ''}"
    if outcome.exit_code == 0:
        return None if case.may_work else "exit code 0"
    if outcome.exit_code != 1:
        return f"exit code {outcome.exit_code}"
    if len(outcome.stderr) != 1:
        return f"{len(outcome.stderr)} lines on stderr: {outcome.stderr}"
    if not any(n in outcome.message for n in names):
        return f"error line does not name the file: {outcome.message}"
    if not re.search(case.problem, outcome.message, re.IGNORECASE):
        return f"error line does not state the problem /{case.problem}/: {outcome.message}"
    if outcome.left:
        return f"left behind: {outcome.left[:3]}"
    return None
