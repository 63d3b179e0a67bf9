"""The seed's stress test on the host for the seed's variants: verdict per runtime (issue 5).

    EDGEDIGIT_DATA=../shared/datasets/mnist.npz nice .venv/bin/python benchmarks/stress_seed.py \
        [--variants mlp mlp-pruned rfe-lr] [--iterations 1000] [--batch 100] [--clock cpu|wall]

Uses the trained variants in ``$EDGEDIGIT_BUILD`` (default ./build; train them first with
``edgedigit train`` / ``edgedigit quantize``, or ``edgedigit pipeline``). The batch is the first
``--batch`` test images (no random draw). Every runtime of each variant (Keras float, LiteRT, TFLM and
native C int8; rfe-lr: float and fixed point) runs ``--iterations`` timed iterations after 10 warm-up
iterations. Prints drift (medians of the last 100 vs first 100 iterations), memory growth, p50/p95/p99,
errors and the verdict (stable: |drift| < 5 %, growth < 10 MB, no errors), plus the machine's load
average, since other work on the machine moves these figures. Results: build/results/stress.jsonl/.json.
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="*", default=["mlp", "mlp-pruned", "rfe-lr"])
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--data", default=None)
    args = ap.parse_args()

    from edgedigit.core.store import trained_variants
    from edgedigit.measure.bench_stress import StressConfig, stress
    from edgedigit.models.data import load_dataset

    ds = load_dataset(args.data)
    names = [v for v in args.variants if v in trained_variants()]
    for v in sorted(set(args.variants) - set(names)):
        print(f"{v}: missing (not trained: run `edgedigit train {v} && edgedigit quantize {v}`)")
    print(f"dataset: {ds.label()}; load average before: {os.getloadavg()[0]:.2f}")
    cfg = StressConfig(iterations=args.iterations, batch=args.batch, clock=args.clock)
    summary = stress(names, ds, cfg)
    print(f"{'variant':<11} {'runtime':<14} {'drift':>9} {'wall drift':>10} {'growth MB':>9} {'errors':>6} "
          f"{'p50/p95/p99 ms per batch (wall)':>32}  verdict")
    for r in summary["results"]:
        if r["status"] != "ok":
            print(f"{r['variant']:<11} {r['runtime']:<14} missing: {r['reason']}")
            continue
        lat = r["latency_ms"]
        print(f"{r['variant']:<11} {r['runtime']:<14} {r['drift_pct']:>+8.2f}% {r['wall_drift_pct']:>+9.2f}% "
              f"{r['growth_mb']:>+9.2f} {r['errors']:>6} "
              f"{lat['median']:>10.3f}/{lat['p95']:>9.3f}/{lat['p99']:>9.3f}  {r['verdict']}"
              + (f" ({'; '.join(r['verdict_reasons'])})" if r["verdict_reasons"] else ""))
    print(f"{args.iterations} iterations x {args.batch} images, drift on {args.clock} time; load average after: "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
