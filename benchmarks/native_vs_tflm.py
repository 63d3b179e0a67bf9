"""Native C backend vs TFLM (and LiteRT) on the real MNIST test set, element for element; memory plan.

For each model: the int8 inputs (the pixel LUT of the model's input quantization) go through the native C
(shared library), TFLM (tflite-micro) and LiteRT's reference kernels. Prints the number of mismatching
output elements native vs TFLM (goal: 0), native vs LiteRT and TFLM vs LiteRT (LiteRT rounds once, TFLM
twice: a few differ), argmax agreement, and the native arena plan vs its liveness lower bound vs TFLM's
arena. Writes ``<build>/results/native-vs-tflm.json``.

    EDGEDIGIT_DATA=../shared/datasets/mnist.npz python benchmarks/native_vs_tflm.py [--variants mlp ...] [--m4]

With ``--m4`` every image also runs through the same C built for a Cortex-M4 (ARMv7E-M DSP path) in QEMU
(``edgedigit.runtimes.native_host.run_qemu_m4``): mismatches vs TFLM and emulated instructions per inference and per MAC.

Models: ``<build>/models/<variant>/model_int8.tflite`` for the given (default: every quantized) variants;
with none, the test factory's models (tests/tflite_factory.py, fixed seeds).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _models(variants: list[str] | None) -> dict[str, Path]:
    from edgedigit.core.paths import models_dir
    from edgedigit.core.store import INT8_FILE, ModelFolder

    if variants:
        return {v: ModelFolder(v).int8_path for v in variants}
    found = {p.parent.name: p for p in sorted(models_dir().glob(f"*/{INT8_FILE}"))}
    if found:
        return found
    print(f"no quantized variants under {models_dir()}: using the test factory's models", file=sys.stderr)
    sys.path.insert(0, str(REPO / "tests"))
    from tflite_factory import build_all

    return build_all(Path(tempfile.mkdtemp(prefix="edgedigit-factory-")))


def _measure(name: str, path: Path, images: np.ndarray, labels: np.ndarray, m4: bool, chunk: int) -> dict:
    from edgedigit.codegen import native as codegen
    from edgedigit.core.graph import load_graph
    from edgedigit.core.int8 import quantize_images
    from edgedigit.runtimes import run_litert, run_tflm, tflm_arena_bytes
    from edgedigit.runtimes.native_host import NativeModel

    g = load_graph(path)
    x = quantize_images(images, float(g.input.scale[0]), int(g.input.zero_point[0]))
    model = NativeModel(path)
    t0 = time.perf_counter()
    nat = model.run(x)
    native_s = time.perf_counter() - t0
    tfl = run_tflm(path, x)
    lit = run_litert(path, x)
    mp = codegen.plan(g)
    pred = {k: v.reshape(len(v), -1).argmax(axis=1) for k, v in (("native", nat), ("tflm", tfl), ("litert", lit))}
    fc_macs = sum(int(np.prod(g.tensors[op.inputs[1]].shape)) for op in g.ops if op.opcode == "FULLY_CONNECTED")
    row = {
        "variant": name, "model": str(path), "model_sha256": g.sha256, "ops": g.op_names(), "images": len(x),
        "elements": int(nat.size),
        "mismatch_native_tflm": int((nat != tfl).sum()),
        "mismatch_native_litert": int((nat != lit).sum()),
        "mismatch_tflm_litert": int((tfl != lit).sum()),
        "images_differing_native_tflm": int((nat != tfl).reshape(len(x), -1).any(axis=1).sum()),
        "argmax_agree_native_tflm": int((pred["native"] == pred["tflm"]).sum()),
        "accuracy": {k: float((v == labels).mean()) for k, v in pred.items()},
        "plan_bytes": mp.arena_bytes, "lower_bound_bytes": mp.lower_bound,
        "plan_to_bound": round(mp.arena_bytes / mp.lower_bound, 4), "tflm_arena_bytes": tflm_arena_bytes(path),
        "fc_macs": fc_macs, "macs": _macs(g), "native_host_us_per_image": round(native_s / len(x) * 1e6, 2),
    }
    if m4:
        _measure_m4(row, path, x, tfl, chunk)
    return row


def _macs(g) -> int:
    """Multiply-accumulates of the FC and convolution ops (the arithmetic the instruction count is divided by)."""
    total = 0
    for op in g.ops:
        if op.opcode == "FULLY_CONNECTED":
            total += int(np.prod(g.tensors[op.inputs[1]].shape)) * (g.tensors[op.outputs[0]].size
                                                                     // g.tensors[op.inputs[1]].shape[0])
        elif op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w, out = g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
            per_output = int(np.prod(w.shape[1:])) if op.opcode == "CONV_2D" else int(np.prod(w.shape[1:3]))
            total += out.size * per_output
    return total


def _measure_m4(row: dict, path: Path, x: np.ndarray, tfl: np.ndarray, chunk: int) -> None:
    """All inputs through the native C on an emulated Cortex-M4 (DSP path), in chunks that fit its flash."""
    from edgedigit.runtimes.native_host import run_qemu_m4

    mismatches, instructions = 0, []
    with tempfile.TemporaryDirectory(prefix="edgedigit-m4-") as tmp:
        for start in range(0, len(x), chunk):
            out, per = run_qemu_m4(path, x[start:start + chunk], Path(tmp) / str(start))
            mismatches += int((out != tfl[start:start + chunk]).sum())
            instructions.append(per * len(out))
    per_inference = sum(instructions) / len(x)
    row["m4"] = {"mismatch_native_tflm": mismatches, "instructions_per_inference": round(per_inference, 1),
                 "instructions_per_mac": round(per_inference / row["macs"], 3),
                 "unit": "emulated instructions in edgedigit_native_run (QEMU -icount), not cycles of a real chip"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="*", help="variants under <build>/models (default: every quantized one)")
    ap.add_argument("--data", default=os.environ.get("EDGEDIGIT_DATA"), help="MNIST .npz (default $EDGEDIGIT_DATA)")
    ap.add_argument("--limit", type=int, default=10000, help="test images (default: all 10,000)")
    ap.add_argument("--m4", action="store_true", help="also run every image on an emulated Cortex-M4 (QEMU)")
    ap.add_argument("--m4-chunk", type=int, default=2000, help="images per QEMU run (they sit in its flash)")
    args = ap.parse_args()

    from edgedigit.core.fsutil import write_json
    from edgedigit.core.paths import results_dir
    from edgedigit.models.data import load_dataset

    ds = load_dataset(args.data)
    images, labels = ds.x_test[: args.limit], ds.y_test[: args.limit]
    print(f"dataset: {ds.describe()}; {len(images)} test images")
    rows = [_measure(name, path, images, labels, args.m4, args.m4_chunk)
            for name, path in _models(args.variants).items()]
    head = (f"{'model':14s} {'elements':>9s} {'nat!=tflm':>9s} {'nat!=lite':>9s} {'tflm!=lite':>10s} {'argmax=':>8s} "
            f"{'acc nat':>8s} {'plan B':>7s} {'bound B':>7s} {'ratio':>6s} {'TFLM arena':>10s} {'us/img':>7s}")
    print(head)
    for r in rows:
        print(f"{r['variant']:14s} {r['elements']:9d} {r['mismatch_native_tflm']:9d} {r['mismatch_native_litert']:9d} "
              f"{r['mismatch_tflm_litert']:10d} {r['argmax_agree_native_tflm']:8d} {r['accuracy']['native']:8.4f} "
              f"{r['plan_bytes']:7d} {r['lower_bound_bytes']:7d} {r['plan_to_bound']:6.3f} {r['tflm_arena_bytes']:10d} "
              f"{r['native_host_us_per_image']:7.2f}")
        if "m4" in r:
            m = r["m4"]
            print(f"  qemu-m4 (DSP path): {m['mismatch_native_tflm']} elements differ from TFLM; "
                  f"{m['instructions_per_inference']:,.0f} emulated instructions per inference, "
                  f"{m['instructions_per_mac']:.3f} per MAC ({r['macs']:,} MACs; emulated instructions, not cycles)")
    out = results_dir() / "native-vs-tflm.json"
    write_json(out, {"dataset": ds.describe(), "machine": {"platform": platform.platform(),
                                                           "python": platform.python_version()},
                     "results": rows})
    print(f"wrote {out}")
    ok = all(r["mismatch_native_tflm"] == 0 and r.get("m4", {}).get("mismatch_native_tflm", 0) == 0 for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
