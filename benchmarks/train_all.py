"""Train and quantize every variant on full MNIST; per-variant wall and CPU times, accuracies, sizes vs issue 6.

Usage: EDGEDIGIT_DATA=../shared/datasets/mnist.npz nice python benchmarks/train_all.py [--build DIR] [--only V ...]
Seed 0, the variants' default epochs and knobs (what `edgedigit train` runs), 500 calibration images, Dense per
tensor. Times are wall and process CPU seconds per variant (CPU time is what the training cost when other jobs
share the machine). Prints each figure next to its target and writes build/results/train_all.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ORDER = ("mlp", "mlp-pruned", "rfe-lr", "mlp-qat", "cnn", "tiny")
TARGETS = {"cnn": (0.993, 64 * 1024), "tiny": (0.988, 16 * 1024), "rfe-lr": (0.910, None)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("EDGEDIGIT_DATA"), help="MNIST .npz (default $EDGEDIGIT_DATA)")
    parser.add_argument("--build", default=None, help="build tree (default $EDGEDIGIT_BUILD or ./build)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="a subset of the variants (dependencies must exist)")
    args = parser.parse_args()
    if args.build:
        os.environ["EDGEDIGIT_BUILD"] = args.build

    from edgedigit.core.fsutil import write_json
    from edgedigit.core.paths import results_dir
    from edgedigit.core.results import machine
    from edgedigit.models.data import load_dataset
    from edgedigit.models.quantize import quantize_variants
    from edgedigit.models.train import train_variants

    ds = load_dataset(args.data)
    print(f"dataset: {ds.label()} train {len(ds.y_train):,} sha256 {ds.sha256[:16]}  source {ds.source}", flush=True)
    if ds.fallback:
        print("WARNING: fallback dataset, these are NOT MNIST figures")
    names = args.only or list(ORDER)
    rows, total_wall, total_cpu = {}, 0.0, 0.0
    for name in names:
        w0, c0 = time.perf_counter(), time.process_time()
        (card,) = [c for c in train_variants([name], ds, seed=args.seed) if c["variant"] == name]
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        total_wall += wall
        total_cpu += cpu
        (card,) = quantize_variants([name], ds, calibration_samples=500, seed=args.seed)
        rows[name] = {"train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1), "float_accuracy": card["float_accuracy"],
                      "int8_accuracy": card["int8_accuracy"], "size_bytes": card["size_bytes"], "params": card["params"],
                      "macs": card["macs"], "tflm_arena_bytes": card.get("tflm_arena_bytes"),
                      "ptq_twin": card.get("ptq_twin"), "training": card.get("training")}
        print(f"{name:11s} train {wall:7.1f} s wall {cpu:7.1f} s CPU  float {100 * card['float_accuracy']:6.2f} %  "
              f"int8 {100 * card['int8_accuracy']:6.2f} %  {card['size_bytes']:>7,} B  arena {card.get('tflm_arena_bytes')}",
              flush=True)
    print(f"total train: {total_wall:.1f} s wall ({total_wall / 60:.2f} min; target <= 10 min on an idle 2-core machine), "
          f"{total_cpu:.1f} s CPU; load average now {os.getloadavg()[0]:.1f}")
    ok = True
    for name, (acc, budget) in TARGETS.items():
        if name in rows:
            r = rows[name]
            good = r["int8_accuracy"] >= acc and (budget is None or r["size_bytes"] <= budget)
            ok &= good
            print(f"  {name}: int8 {100 * r['int8_accuracy']:.2f} % (target >= {100 * acc:.1f} %)"
                  + (f", {r['size_bytes']:,} B (target <= {budget:,} B)" if budget else "") + ("  OK" if good else "  MISSED"))
    if "mlp-qat" in rows and "mlp" in rows:
        q, p = rows["mlp-qat"]["int8_accuracy"], rows["mlp"]["int8_accuracy"]
        ok &= q >= p
        print(f"  mlp-qat: int8 {100 * q:.2f} % vs PTQ twin mlp {100 * p:.2f} %  {'OK' if q >= p else 'MISSED'}")
    from edgedigit.report.select import judge
    from edgedigit.targets.boards import list_boards

    boards = sorted(list_boards(), key=lambda b: b.ram_bytes)
    for name in ("tiny", "cnn", "rfe-lr"):
        if name in rows:
            verdicts = {b.id: judge(b, name) for b in boards}
            fits = [f"{b.id} ({verdicts[b.id].backend}, {verdicts[b.id].requirement['ram']:,} of {b.ram_bytes:,} B RAM)"
                    for b in boards if verdicts[b.id].eligible]
            rows[name]["fits_boards"] = [b.id for b in boards if verdicts[b.id].eligible]
            print(f"  {name} fits (smallest RAM first): {', '.join(fits) or 'none'}")
            for b in boards[:1]:
                if not verdicts[b.id].eligible:
                    print(f"    not {b.id}: {verdicts[b.id].left_out}")
    write_json(results_dir() / "train_all.json", {"dataset": ds.describe(), "machine": machine(), "seed": args.seed,
                                                  "variants": rows, "total_train_wall_s": round(total_wall, 1),
                                                  "total_train_cpu_s": round(total_cpu, 1),
                                                  "load_average_end": os.getloadavg()})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
