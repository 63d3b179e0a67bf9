"""The qemu-m4 firmware against TFLM on the MNIST test set, for every trained neural variant.

For each variant with a ``model_int8.tflite`` in the build tree: export + build the firmware for the
board (default qemu-m4), stream the first N test images (default all 10,000) over the emulated UART,
and print the number of images and output elements whose raw int8 outputs differ from TFLM's, the
on-device accuracy, the emulated instructions per inference (median, min, max) and per multiply-
accumulate (MACs from card.json). On qemu-m4 these are emulated instructions, not cycles of a real chip.

    EDGEDIGIT_DATA=/work/shared/datasets/mnist.npz nice python benchmarks/device_agreement.py [--samples N]

The per-sample records go to build/results/device-<board>-<variant>.jsonl as they arrive (add --resume
to continue an interrupted run).
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    from edgedigit.core.errors import EdgeDigitError
    from edgedigit.core.paths import models_dir
    from edgedigit.measure.bench_device import bench_device

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--variants", nargs="*", default=None, help="default: every variant with model_int8.tflite")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    variants = args.variants or sorted(p.parent.name for p in models_dir().glob("*/model_int8.tflite"))
    if not variants:
        print(f"no trained neural variant under {models_dir()}; train and quantize first", file=sys.stderr)
        return 1
    rows = []
    for v in variants:
        try:
            s = bench_device(args.board, v, samples=args.samples, resume=args.resume, progress=sys.stderr.isatty(),
                             log=lambda m: print(m, file=sys.stderr))
        except EdgeDigitError as e:
            print(f"{v}: error: {e}", file=sys.stderr)
            rows.append((v, None))
            continue
        rows.append((v, s))
    note = next((s["counter_note"] for _, s in rows if s and s["counter_note"]), "")
    print(f"board {args.board}; counts in {rows[0][1]['counter_unit'] if rows[0][1] else '?'}"
          + (f" ({note})" if note else ""))
    print(f"{'variant':<12} {'images':>7} {'img diff':>8} {'elem diff':>9} {'accuracy':>9} "
          f"{'median/inf':>11} {'min':>9} {'max':>9} {'MACs':>9} {'per MAC':>8}")
    for v, s in rows:
        if s is None:
            print(f"{v:<12} failed")
            continue
        a, lat = s["agreement"], s["latency_counter"]
        per_mac = f"{s['counter_per_mac']:.2f}" if "counter_per_mac" in s else "-"
        print(f"{v:<12} {a['images']:>7} {a['images'] - a['images_identical']:>8} "
              f"{a['elements'] - a['elements_identical']:>9} {s['accuracy'] * 100:>8.2f}% "
              f"{lat['median']:>11,.0f} {lat['min']:>9,.0f} {lat['max']:>9,.0f} {s.get('macs', 0):>9,} {per_mac:>8}")
    return 0 if all(s is not None and s["agreement"]["images_identical"] == s["agreement"]["images"]
                    for _, s in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
