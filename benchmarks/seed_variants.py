"""Full-MNIST figures of issue 2 for the seed's neural variants: train, quantize, validate mlp and mlp-pruned.

Usage: EDGEDIGIT_DATA=../shared/datasets/mnist.npz nice python benchmarks/seed_variants.py [--build DIR]
Seed 0, the variants' own epochs (mlp 3, mlp-pruned 2 fine-tuning), 500 calibration images, Dense per tensor.
Prints each figure next to its target and writes build/results/seed_variants.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("EDGEDIGIT_DATA"), help="MNIST .npz (default $EDGEDIGIT_DATA)")
    parser.add_argument("--build", default=None, help="build tree (default $EDGEDIGIT_BUILD or ./build)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.build:
        os.environ["EDGEDIGIT_BUILD"] = args.build

    from edgedigit.core.fsutil import write_json
    from edgedigit.core.paths import results_dir
    from edgedigit.measure.validate import validate_variants
    from edgedigit.models.data import load_dataset
    from edgedigit.models.quantize import quantize_variants
    from edgedigit.models.train import train_variants

    ds = load_dataset(args.data)
    print(f"dataset: {ds.label()} train {len(ds.y_train):,} sha256 {ds.sha256[:16]}  source {ds.source}")
    if ds.fallback:
        print("WARNING: fallback dataset, these are NOT MNIST figures")
    names = ["mlp", "mlp-pruned"]
    t0 = time.perf_counter()
    cards = {c["variant"]: c for c in train_variants(names, ds, seed=args.seed)}
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    cards = {c["variant"]: c for c in quantize_variants(names, ds, calibration_samples=500, seed=args.seed)}
    t_quant = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = validate_variants(names, ds)
    t_val = time.perf_counter() - t0

    checks = []

    def check(label: str, value: float, ok: bool, target: str) -> None:
        checks.append({"figure": label, "value": value, "target": target, "ok": bool(ok)})
        print(f"  {'PASS' if ok else 'FAIL'}  {label:<52} {value:>10.4f}   target {target}")

    print(f"\ntimes: train {t_train:.1f} s, quantize {t_quant:.1f} s, validate {t_val:.1f} s")
    for name in names:
        c, v = cards[name], summary["variants"][name]
        print(f"\n{name}: params {c['params']:,}, MACs {c['macs']:,}, int8 {c['size_bytes']:,} bytes, "
              f"train {c['train_seconds']:.1f} s, TFLM arena {c['tflm_arena_bytes']:,} B, "
              f"input scale {c['quantization']['input_scale']:.9g} zp {c['quantization']['input_zero_point']}")
        fl, lit, tflm = v["float"]["accuracy"], v["quantized"]["litert-ref"]["accuracy"], v["quantized"]["tflm"]["accuracy"]
        floor = 0.965 if name == "mlp" else 0.970
        check(f"{name} float accuracy (%)", 100 * fl, fl >= floor, f">= {100 * floor:.1f}")
        check(f"{name} int8 accuracy, LiteRT ref (%)", 100 * lit, name == "mlp" or lit >= 0.970,
              ">= 97.0" if name != "mlp" else "(reported)")
        check(f"{name} int8 accuracy, TFLM (%)", 100 * tflm, True, "(reported)")
        check(f"{name} int8 - float (points)", 100 * (lit - fl), name == "mlp" or abs(lit - fl) <= 0.003,
              "within 0.3" if name != "mlp" else "(reported)")
        if name == "mlp-pruned":
            for layer, zeros in c["sparsity"].items():
                check(f"{name} zeros in Dense kernel '{layer}' (%)", 100 * zeros, abs(zeros - 0.5) <= 0.01, "50 +- 1")
        a = v["agreement"]["tflm"]
        check(f"{name} LiteRT vs TFLM prediction agreement (%)", 100 * a["prediction_agreement"],
              a["prediction_agreement"] >= 0.999, ">= 99.9")
        print(f"        LiteRT vs TFLM int8 outputs: {a['elements_differ']:,} of {a['elements']:,} elements differ "
              f"(max |diff| {a['max_abs_diff']}), in {a['images_with_any_difference']:,} of {a['images']:,} images; "
              f"{a['predictions_differ']} predictions differ")
        pc = v["quantized"]["litert-ref"]["per_class"]
        print("        int8 per-class F1: " + " ".join(f"{i}:{f:.3f}" for i, f in enumerate(pc["f1"])))
    ok = all(c["ok"] for c in checks)
    write_json(results_dir() / "seed_variants.json", {
        "dataset": ds.describe(), "seed": args.seed, "checks": checks, "all_ok": ok,
        "seconds": {"train": t_train, "quantize": t_quant, "validate": t_val},
        "machine": summary["machine"], "model_sha256": {n: summary["variants"][n]["model_sha256"] for n in names}})
    print(f"\n{'ALL TARGETS MET' if ok else 'SOME TARGETS MISSED'}; written {results_dir() / 'seed_variants.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
