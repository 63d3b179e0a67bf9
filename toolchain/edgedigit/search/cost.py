"""The latency objective: emulated Cortex-M4 instructions per inference, from a per-op cost model.

``edgedigit search`` cannot run every trial's firmware, so it estimates: an int8 graph's work is counted per
op type (:data:`FEATURES`: multiply-accumulates of 3x3/5x5 convolutions, of first-layer convolutions over
one input channel, of 1x1 convolutions, of depthwise convolutions and of fully connected layers; values read
by pooling; output elements written by any op; the number of ops; one constant), and instructions are a
non-negative weighted sum of those counts. The weights are calibrated once by running the native backend's
C for a few small models on the emulated Cortex-M4 (:func:`edgedigit.runtimes.native_host.run_qemu_m4`:
QEMU mps2-an386 with ``-icount``, the SMLAD/SXTB16 kernel path) and fitting the measured instructions with
non-negative least squares on relative errors (``scipy.optimize.nnls``). The calibration is cached in
``build/search/cost_model.json`` under a key made of the native kernel sources, the compiler and the
feature list, so a kernel change recalibrates it. Each finalist's estimate is checked by running it
(:func:`edgedigit.search.runner.verify`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ModelError, ToolError
from ..core.fsutil import write_json
from ..core.graph import Graph
from ..core.paths import search_dir, templates_dir

FEATURES = ("conv_macs", "conv_in1_macs", "pointwise_macs", "depthwise_macs", "fc_macs", "pool_reads", "elements",
            "ops", "constant")
CACHE_FILE = "cost_model.json"
CALIBRATION_MODELS = 48  # random specs of the search space, plus the shipped cnn and tiny architectures
CALIBRATION_IMAGES = 2
FIT = "nnls-relative"  # how the weights are fitted (part of the cache key)


def not_applicable(board: Any) -> str | None:
    """Why the cost model does not estimate latency on ``board`` (None when it does).

    The instructions are those of the native kernels' 32-bit paths on an emulated Cortex-M4; on another 32-bit
    core they rank models alike (a proxy), but an 8-bit AVR (the Uno) runs the int32 arithmetic as multi-byte
    sequences and 64-bit requantization through library calls, so no Cortex-M4 figure ranks its models: its
    search drops the latency objective (accuracy and flash instead; the budget still decides what fits).
    """
    if "AVR" in board.mcu:
        return (f"{board.id} ({board.mcu}) is no 32-bit core: the emulated Cortex-M4 instruction count does not "
                "estimate its latency; use --objectives accuracy,flash (the default there) or accuracy,flash,ram")
    return None


def features(graph: Graph) -> dict[str, float]:
    """The work of one inference of ``graph``, counted per op type (see the module docstring)."""
    f = dict.fromkeys(FEATURES, 0.0)
    f["constant"] = 1.0
    for op in graph.ops:
        out = graph.tensors[op.outputs[0]]
        f["elements"] += out.size
        f["ops"] += 1
        if op.opcode == "CONV_2D":
            _, kh, kw, cin = graph.tensors[op.inputs[1]].shape
            key = "pointwise_macs" if kh == kw == 1 else "conv_in1_macs" if cin == 1 else "conv_macs"
            f[key] += out.size * kh * kw * cin
        elif op.opcode == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = graph.tensors[op.inputs[1]].shape
            f["depthwise_macs"] += out.size * kh * kw
        elif op.opcode == "FULLY_CONNECTED":
            f["fc_macs"] += float(np.prod(graph.tensors[op.inputs[1]].shape))
        elif op.opcode in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            f["pool_reads"] += out.size * op.options.get("filter_height", 1) * op.options.get("filter_width", 1)
    return f


@dataclass
class CostModel:
    """Instructions per unit of each feature, what they were calibrated against, and how well they fit."""

    coefficients: dict[str, float]
    key: str = ""
    points: list[dict[str, Any]] = field(default_factory=list)  # {"name", "features", "measured", "estimated"}

    def estimate(self, graph: Graph) -> int:
        """Estimated emulated Cortex-M4 instructions of one inference of ``graph``."""
        f = features(graph)
        return int(round(sum(self.coefficients.get(k, 0.0) * v for k, v in f.items())))

    @property
    def relative_errors(self) -> list[float]:
        return [abs(p["estimated"] - p["measured"]) / p["measured"] for p in self.points if p["measured"]]

    def as_dict(self) -> dict[str, Any]:
        errs = self.relative_errors
        return {"key": self.key, "features": list(FEATURES), "coefficients": self.coefficients, "points": self.points,
                "max_relative_error": round(max(errs), 4) if errs else None,
                "mean_relative_error": round(float(np.mean(errs)), 4) if errs else None,
                "unit": "emulated Cortex-M4 instructions per inference (QEMU mps2-an386 -icount, native backend)"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CostModel:
        return cls({k: float(v) for k, v in d["coefficients"].items()}, d.get("key", ""), list(d.get("points", [])))


def fit(points: list[dict[str, Any]]) -> dict[str, float]:
    """Non-negative least squares of measured instructions on the features of ``points``, in relative terms
    (each point's equation divided by its measurement: small models are fitted as well as large ones).

    Columns are scaled to a maximum of 1 for the solver and the weights scaled back.
    """
    from scipy.optimize import nnls

    a = np.array([[p["features"][k] for k in FEATURES] for p in points], dtype=np.float64)
    b = np.array([p["measured"] for p in points], dtype=np.float64)
    # relative errors: each row divided by its measurement, so a 30 k-instruction MLP counts as much as a 15 M cnn
    a, b = a / b[:, None], np.ones_like(b)
    scale = np.where(a.max(axis=0) > 0, a.max(axis=0), 1.0)
    w, _ = nnls(a / scale, b)
    return {k: float(v / s) for k, v, s in zip(FEATURES, w, scale, strict=True)}


def cache_key() -> str:
    """What the calibration depends on: the native kernels and their templates, the M4 flags, the compiler."""
    from ..runtimes.native_host import M4_FLAGS

    h = hashlib.sha256(" ".join((FIT, *FEATURES, *M4_FLAGS)).encode())
    folder = templates_dir() / "native"
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    cc = shutil.which("arm-none-eabi-gcc")
    if cc is not None:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
        h.update(out.splitlines()[0].encode() if out else b"")
    return h.hexdigest()[:24]


def calibration_specs(count: int = CALIBRATION_MODELS, seed: int = 0) -> list[tuple[str, dict]]:
    """``count`` architectures: the shipped cnn and tiny, then random draws of the search space (seeded)."""
    import optuna

    from .space import Space, baseline_params, suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = Space(max_epochs=1)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for params in baseline_params():
        study.enqueue_trial(params)
    out = []
    for i in range(count):
        trial = study.ask()
        out.append((f"cal{i:02d}", suggest(trial, space)["architecture"]))
        study.tell(trial, 0.0)
    return out


def calibrate(count: int = CALIBRATION_MODELS, seed: int = 0, work_dir: Path | None = None) -> CostModel:
    """Measure ``count`` untrained models on the emulated Cortex-M4 and fit the weights (see the module docstring).

    Raises:
        ToolError: arm-none-eabi-gcc or qemu-system-arm is missing or fails.
    """
    from ..core.graph import load_graph
    from ..core.int8 import quantize_for
    from ..models import zoo
    from ..models.quantize import convert_int8
    from ..runtimes.native_host import run_qemu_m4

    work = Path(work_dir) if work_dir is not None else search_dir() / "calibration"
    rng = np.random.default_rng(seed)
    cal = rng.random((16, 28, 28), dtype=np.float32)
    images = rng.integers(0, 256, (CALIBRATION_IMAGES, 28, 28), dtype=np.uint8)
    points = []
    for name, arch in calibration_specs(count, seed):
        path = work / name / "model_int8.tflite"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(convert_int8(zoo.build_from_spec(arch, name), cal, "per-tensor"))
        graph = load_graph(path)
        _, measured = run_qemu_m4(path, quantize_for(graph, images), work / name / "m4")
        points.append({"name": name, "architecture": zoo.describe(arch), "features": features(graph),
                       "measured": measured})
    coefficients = fit(points)
    model = CostModel(coefficients, cache_key(), points)
    for p in model.points:
        p["estimated"] = int(round(sum(coefficients[k] * v for k, v in p["features"].items())))
    return model


def load_or_calibrate(path: Path | None = None, count: int = CALIBRATION_MODELS) -> CostModel:
    """The cached cost model (``build/search/cost_model.json``) if it was calibrated against today's kernels,
    else a new calibration, cached.

    Raises:
        ToolError: it must be calibrated and the emulator or the cross compiler is missing.
        ModelError: the cached file is unreadable.
    """
    path = Path(path) if path is not None else search_dir() / CACHE_FILE
    key = cache_key()
    if path.is_file():
        try:
            cached = CostModel.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"{path}: not a readable cost model ({e}); delete it to recalibrate") from None
        if cached.key == key:
            return cached
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        raise ToolError("the latency cost model is calibrated on the emulated Cortex-M4: install arm-none-eabi-gcc "
                        "and qemu-system-arm (scripts/setup.sh), or leave latency out of --objectives")
    model = calibrate(count)
    write_json(path, model.as_dict())
    return model
