"""Native C backend vs TFLM on the same int8 model: instructions, RAM and flash ratios (issue 5).

    EDGEDIGIT_DATA=../shared/datasets/mnist.npz nice .venv/bin/python benchmarks/backend_compare.py \
        [--variants mlp mlp-pruned ...] [--images 10]

For every trained neural variant in ``$EDGEDIGIT_BUILD`` (or the named ones): instructions per inference
under valgrind callgrind (only inside ``edgedigit_native_run`` / TFLM's ``MicroInterpreter::Invoke``,
the first ``--images`` test images: deterministic), the native static arena vs the liveness lower bound
vs TFLM's arena, and flash (native objects for Cortex-M4 vs flatbuffer + TFLM library estimate; see
``edgedigit.measure.bench_compare``). Prints the measured ratios against the goals (native <= 0.5x TFLM
instructions, <= 1.1x the lower bound in RAM) whatever they are. Results: build/results/compare.json.
"""

from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="*", default=None)
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()

    from edgedigit.measure.bench_compare import compare
    from edgedigit.models.data import load_dataset

    ds = load_dataset(args.data)
    print(f"dataset: {ds.label()}; {args.images} images per side")
    summary = compare(args.variants, ds, images=args.images)
    print(f"{'variant':<11} {'instr native':>12} {'instr TFLM':>11} {'ratio':>7} {'-O3':>10} {'ratio':>7} {'instr/MAC':>9} "
          f"{'RAM plan':>8} {'bound':>6} {'ratio':>6} {'TFLM arena':>10} {'flash nat':>9} {'flash TFLM':>10} {'ratio':>6} "
          "identical")
    for r in summary["results"]:
        i, m, f = r["instructions"], r["ram"], r["flash"]
        print(f"{r['variant']:<11} {i['native']:>12,} {i['tflm']:>11,} {i['ratio']:>6.3f}x {i['native_O3']:>10,} "
              f"{i['ratio_O3']:>6.3f}x {i['native_per_mac'] or 0:>9.2f} "
              f"{m['native_plan']:>8,} {m['lower_bound']:>6,} {m['ratio_to_lower_bound']:>5.3f}x {m['tflm_arena']:>10,} "
              f"{f['native']:>9,} {f['tflm']:>10,} {f['ratio']:>5.3f}x {'yes' if r['outputs_mismatch'] == 0 else 'NO'}")
    print("goals: instructions ratio <= 0.5x, RAM plan <= 1.1x lower bound")
    for k, v in summary["method"].items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
