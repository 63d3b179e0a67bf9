"""Issue 14's search benchmark: `edgedigit search --board nano33ble` for 60 minutes, then its two done-when checks.

Usage: EDGEDIGIT_DATA=../shared/datasets/mnist.npz nice python benchmarks/search_nano33ble.py [--minutes 60]
       [--build DIR] [--seed 0] [--max-epochs 8] [--min-epochs 1] [--train-limit N] [--seeds 3] [--cnn-epochs N]
       [--max-latency-ratio 0.5] [--family conv] [--teacher cnn-wide]
       [--max-model-bytes N] [--promote-margin 0.002]
Seed 0. The reference is the cnn variant (trained with the variant's own recipe when build/models/cnn is
missing): its int8 test accuracy (card) and its emulated Cortex-M4 instructions (its native C on QEMU). The
search (objective accuracy; conv nets only; teacher cnn-wide, trained first when missing; --max-latency 0.5x
the cnn's instructions, so that trials the first check could not use are pruned before training) runs for
--minutes; then, of all its complete trials, the most
accurate model (validation accuracy) at <= 0.5x the cnn's instructions and the most accurate model of <= 16 KB
are promoted (retrained with --seeds seeds; not when its validation accuracy is more than --promote-margin
under its check's target: that check fails on the search's own figure) and checked on the test set:
  1. int8 test accuracy (mean and minimum over the seeds) >= the cnn's, at <= 0.5x the cnn's instructions (run);
  2. model <= 16 KB with int8 test accuracy >= 99.3 % (minimum over the seeds).
Prints the front and both checks; writes build/results/search_nano33ble.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

BOARD = "nano33ble"
SMALL_BYTES = 16 * 1024
SMALL_TARGET = 0.993


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("EDGEDIGIT_DATA"), help="MNIST .npz (default $EDGEDIGIT_DATA)")
    parser.add_argument("--build", default=None, help="build tree (default $EDGEDIGIT_BUILD or ./build)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=60.0, help="the search's time budget")
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--min-epochs", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=None, help="search on the first N training images")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of each promoted finalist")
    parser.add_argument("--cnn-epochs", type=int, default=None, help="epochs of the reference cnn when it is trained here")
    parser.add_argument("--objectives", default="accuracy",
                        help="the search's --objectives (default accuracy: the checks ask for the most accurate model "
                             "under a latency and a size bound, not for a front)")
    parser.add_argument("--teacher", default="cnn-wide",
                        help="the search's distillation teacher, trained here (full MNIST, --seed) when missing "
                             "(default cnn-wide: 99.5 %% float against the cnn's 99.4 %%)")
    parser.add_argument("--max-model-bytes", type=int, default=0,
                        help="the search's --max-model-bytes (0: none; 16384 spends the search on the second check)")
    parser.add_argument("--promote-margin", type=float, default=0.002,
                        help="promote a check's best trial only if its validation accuracy is at most this far "
                             "(fraction) under the check's target (default 0.002: 0.2 points)")
    parser.add_argument("--family", default="conv",
                        help="the search's --family (default conv: the checks' accuracy targets are beyond the MLPs)")
    parser.add_argument("--max-latency-ratio", type=float, default=0.5,
                        help="the search's --max-latency as a fraction of the cnn's instructions (0: none)")
    args = parser.parse_args()
    if args.build:
        os.environ["EDGEDIGIT_BUILD"] = args.build

    from edgedigit.core.fsutil import write_json
    from edgedigit.core.graph import load_graph
    from edgedigit.core.int8 import quantize_for
    from edgedigit.core.paths import results_dir, search_dir
    from edgedigit.core.results import machine
    from edgedigit.core.store import ModelFolder, read_card
    from edgedigit.models.data import load_dataset
    from edgedigit.models.quantize import quantize_variants
    from edgedigit.models.train import train_variants
    from edgedigit.runtimes.native_host import run_qemu_m4
    from edgedigit.search.promote import promote
    from edgedigit.search.runner import TRIALS_FILE, SearchConfig, parse_objectives, run_search
    from edgedigit.search.space import parse_families

    ds = load_dataset(args.data)
    print(f"dataset: {ds.label()} train {len(ds.y_train):,} sha256 {ds.sha256[:16]}  source {ds.source}")
    if ds.fallback:
        print("WARNING: fallback dataset, these are NOT MNIST figures")
    if not ModelFolder("cnn").int8_path.is_file():
        t0 = time.perf_counter()
        train_variants(["cnn"], ds, seed=args.seed, epochs=args.cnn_epochs)
        quantize_variants(["cnn"], ds, calibration_samples=500, seed=args.seed)
        print(f"reference cnn trained in {time.perf_counter() - t0:.0f} s")
    if args.teacher and not ModelFolder(args.teacher).is_trained:
        t0 = time.perf_counter()
        train_variants([args.teacher], ds, seed=args.seed)
        print(f"teacher {args.teacher} trained in {time.perf_counter() - t0:.0f} s (before the search's clock starts)")
    if args.teacher:
        t = read_card(args.teacher)
        print(f"teacher {args.teacher}: float test accuracy {100 * t.float_accuracy:.2f} %, {t.params:,} parameters")
    cnn = read_card("cnn")
    cnn_path = ModelFolder("cnn").int8_path
    _, cnn_instr = run_qemu_m4(cnn_path, quantize_for(load_graph(cnn_path), ds.x_test[:2]), search_dir() / "verify" / "cnn")
    print(f"cnn: int8 test accuracy {100 * cnn.int8_accuracy:.2f} %, {cnn_instr:,.0f} emulated instructions, "
          f"{cnn.size_bytes:,} B")

    max_latency = args.max_latency_ratio * cnn_instr if args.max_latency_ratio > 0 else None
    if max_latency:
        print(f"search: --max-latency {max_latency:,.0f} ({args.max_latency_ratio}x the cnn's)")
    cfg = SearchConfig(board=BOARD, time_budget_min=args.minutes, seed=args.seed, max_epochs=args.max_epochs,
                       min_epochs=args.min_epochs, families=parse_families(args.family), train_limit=args.train_limit,
                       teacher=args.teacher or None,
                       max_latency=max_latency, max_model_bytes=args.max_model_bytes or None,
                       objectives=parse_objectives(args.objectives))
    t0 = time.perf_counter()
    summary = run_search(cfg, ds, log=lambda m: print(f"  {m}", flush=True))
    search_s = time.perf_counter() - t0
    c = summary["counts"]
    print(f"\nsearch: {search_s / 60:.1f} min, {c['complete']} complete, {c['pruned']} pruned before training, "
          f"{c['failed']} failed; cost model max error {summary['cost_model']['max_relative_error']}")
    print(f"{'trial':>5} {'val acc':>8} {'instr est':>11} {'instr run':>11} {'flash':>9} {'RAM':>8} {'bytes':>8}  architecture")
    for r in summary["front"]:
        run = r.get("instructions_measured")
        print(f"{r['trial']:>5} {100 * r['accuracy']:>7.2f}% {r['instructions']:>11,} "
              f"{(f'{run:,.0f}' if run else '-'):>11} {r['flash']:>9,} {r['ram']:>8,} {r['size_bytes']:>8,}  "
              f"{r['architecture']}")

    def instr(r):
        return r.get("instructions_measured") or r["instructions"]

    # candidates: every complete trial of the study (with one objective the front is a single trial), most
    # accurate first; a front row carries the instructions measured on the emulator, the others the estimate
    measured = {r["trial"]: r for r in summary["front"]}
    rows = []
    for line in (search_dir(BOARD) / TRIALS_FILE).read_text().splitlines():
        r = json.loads(line)
        if r.get("state") == "COMPLETE":
            rows.append({**r, "trial": r["number"], **measured.get(r["number"], {})})
    rows.sort(key=lambda r: (-r["accuracy"], instr(r), r["trial"]))
    fast = [r for r in rows if instr(r) <= 0.5 * cnn_instr]
    small = [r for r in rows if r["size_bytes"] <= SMALL_BYTES]
    picks = {"fast": fast[0] if fast else None, "small": small[0] if small else None}
    targets = {"fast": cnn.int8_accuracy, "small": SMALL_TARGET}
    promoted, hopeless = {}, {}
    for key, row in picks.items():
        if row is None:
            continue
        if row["accuracy"] < targets[key] - args.promote_margin:
            hopeless[key] = (f"best trial {row['trial']}: validation {100 * row['accuracy']:.2f} % < "
                             f"{100 * targets[key]:.2f} % - {100 * args.promote_margin:.2f}: not promoted")
            print(f"{key}: {hopeless[key]}")
            continue
        if row["trial"] not in promoted:
            promoted[row["trial"]] = promote(BOARD, row["trial"], ds, seed=args.seed, seeds=args.seeds)
    checks = []
    row = picks["fast"]
    if row is None or "fast" in hopeless:
        checks.append({"check": "accuracy >= cnn at <= 0.5x instructions", "ok": False,
                       "why": hopeless.get("fast", "no trial that fast")})
    else:
        card = promoted[row["trial"]]
        s, run = card["seeds"], card["search"].get("instructions_measured")
        ok = s["int8_accuracy_min"] >= cnn.int8_accuracy and run is not None and run <= 0.5 * cnn_instr
        checks.append({"check": "accuracy >= cnn at <= 0.5x instructions", "ok": ok, "variant": card["variant"],
                       "test_mean": s["int8_accuracy_mean"], "test_min": s["int8_accuracy_min"],
                       "cnn_test": cnn.int8_accuracy, "instructions": run, "cnn_instructions": cnn_instr})
    row = picks["small"]
    if row is None or "small" in hopeless:
        checks.append({"check": "<= 16 KB at >= 99.3 % (min of seeds)", "ok": False,
                       "why": hopeless.get("small", "no trial <= 16 KB")})
    else:
        card = promoted[row["trial"]]
        s = card["seeds"]
        checks.append({"check": "<= 16 KB at >= 99.3 % (min of seeds)", "variant": card["variant"],
                       "ok": card["size_bytes"] <= SMALL_BYTES and s["int8_accuracy_min"] >= SMALL_TARGET,
                       "bytes": card["size_bytes"], "test_mean": s["int8_accuracy_mean"], "test_min": s["int8_accuracy_min"]})
    print()
    for ch in checks:
        detail = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) and v < 1.5 else f"{k} {v:,}" if isinstance(v, int | float)
                           else f"{k} {v}" for k, v in ch.items() if k not in ("check", "ok"))
        print(f"{'PASS' if ch['ok'] else 'FAIL'}  {ch['check']}: {detail}")
    out = results_dir() / "search_nano33ble.json"
    write_json(out, {"dataset": ds.describe(), "seed": args.seed, "minutes": args.minutes, "search_seconds": search_s,
                     "train_limit": args.train_limit, "max_epochs": args.max_epochs, "min_epochs": args.min_epochs,
                     "seeds": args.seeds, "teacher": args.teacher, "family": args.family,
                     "max_model_bytes": args.max_model_bytes, "max_latency": max_latency, "promote_margin": args.promote_margin,
                     "cnn": {"int8_accuracy": cnn.int8_accuracy, "instructions": cnn_instr, "size_bytes": cnn.size_bytes},
                     "front": summary["front"], "counts": c, "checks": checks, "machine": machine()})
    print(f"written: {out}")
    return 0 if all(ch["ok"] for ch in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
