"""Long run (issue 7): 100,000 inferences on the boards that run here (``host``, ``qemu-m4``) through the
serial protocol, with zero heap on the device, drift and memory figures, and a protocol-error count.

    nice .venv/bin/python benchmarks/long_run.py [--boards host,qemu-m4] [--total 100000] [--batch 1000]
                                                 [--stream 20] [--variant mlp] [--data PATH]

For each board: export the variant's int8 model with the native backend, build it, check that the linked
firmware has no heap function (``nm``: no malloc/free/calloc/realloc/_sbrk), start it, then repeat until
``--total`` inferences ran:

1. ``db load 784%`` + ``db`` frames: one test image (the batch number picks it);
2. ``infer BATCH 0%`` (MLPerf timing: two ``m-lap-us`` lines on the device's own clock); its
   ``m-results`` must equal the device's own ``ed-run`` raw outputs for that image, rescaled;
3. ``ed-run%`` on the same image (the device's counter: ns on host, emulated instructions on qemu-m4);
4. ``--stream`` further test images streamed with ``ed-run DATA%``; raw int8 outputs compared with
   TFLM on the host, element for element.

Protocol errors are every resynchronization the host side needed (a retry) plus every error that
escaped. Drift is the change of the per-inference time (and of the ``ed-run`` counter on the fixed first
image) between the first and last tenth of the batches; memory is the device's static RAM (ELF data +
bss), its arena and protocol buffers (``ed-info``), and the firmware process's RSS before and after
(host: the firmware itself; qemu-m4: the emulator). Each batch is appended to
``build/results/long_run-<board>.jsonl`` as it ends; the summary goes to ``long_run-<board>.json``.
Fixed seed; figures printed at the end. If the variant is not trained yet it is trained on a real-MNIST
slice (3,000 images, 1 epoch, seed 0): the run measures reliability, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _model(variant: str, dataset: Any) -> Path:
    from edgedigit.core.store import ModelFolder

    tflite = ModelFolder(variant).int8_path
    if not tflite.is_file():
        from edgedigit.models.quantize import quantize_variants
        from edgedigit.models.train import train_variants

        small = dataset.subset(3000, 500)
        print(f"{variant} is not trained: training it on a 3,000-image slice (1 epoch, seed 0)")
        train_variants([variant], small, seed=0, epochs=1)
        quantize_variants([variant], small, calibration_samples=100, seed=0)
    return tflite


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def _milli(raw: tuple[int, ...], scale: float, zp: int) -> tuple[int, ...]:
    """What ``m-results`` prints for raw int8 outputs, in thousandths, computed as the device C does:
    ``(float)(raw - zp) * scale``, times 1000.0f, rounded half away from zero, all in float32."""
    out = []
    for r in raw:
        v = np.float32(r - zp) * np.float32(scale)
        v = np.clip(v, np.float32(-2.0e6), np.float32(2.0e6))
        scaled = v * np.float32(1000.0)
        out.append(int(scaled - np.float32(0.5)) if scaled < 0 else int(scaled + np.float32(0.5)))
    return tuple(out)


def run_board(board_id: str, variant: str, tflite: Path, dataset: Any, total: int, batch: int, stream: int,
              seed: int) -> dict[str, Any]:
    """Run the long run on one board; returns its summary (also written to ``long_run-<board>.json``)."""
    from edgedigit.core.errors import DeviceError
    from edgedigit.core.fsutil import sha256_file, write_json
    from edgedigit.core.graph import load_graph
    from edgedigit.core.int8 import quantize_images
    from edgedigit.core.paths import results_dir
    from edgedigit.measure.bench_device import export_project
    from edgedigit.measure.stats import drift_percent
    from edgedigit.runtimes import run_tflm
    from edgedigit.targets import devices
    from edgedigit.targets.boards import load_board

    board = load_board(board_id)
    spec = devices.run_spec(board)
    graph = load_graph(tflite)
    sha = sha256_file(tflite)
    in_scale = float(np.asarray(graph.input.scale).ravel()[0])
    in_zp = int(np.asarray(graph.input.zero_point).ravel()[0])
    out_scale = float(np.asarray(graph.output.scale).ravel()[0])
    out_zp = int(np.asarray(graph.output.zero_point).ravel()[0])

    batches = -(-total // batch)
    rng = np.random.default_rng(seed)
    n_test = len(dataset.x_test)
    loaded_idx = rng.integers(0, n_test, batches)
    streamed_idx = rng.integers(0, n_test, (batches, stream))
    need = np.unique(np.concatenate([loaded_idx, streamed_idx.ravel(), [0]]))
    ref_raw = np.asarray(run_tflm(tflite, quantize_images(dataset.x_test[need], in_scale, in_zp)))
    reference = {int(i): tuple(int(v) for v in r.ravel()) for i, r in zip(need, ref_raw.reshape(len(need), -1), strict=True)}

    project = export_project(board, variant, "native")
    print(f"{board.id}: building {project}")
    devices.make(project)
    elf = project / spec.binary
    size_tool = spec.size_tool or "size"
    nm_tool = spec.nm_tool or "nm"
    sizes = devices.elf_size(elf, size_tool)
    heap = devices.heap_symbols(elf, nm_tool)

    out = results_dir() / f"long_run-{board.id}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    resyncs = 0
    per_inference_us: list[float] = []
    counters: list[int] = []
    done = 0
    streamed = streamed_ok = results_ok = 0
    t_start = time.monotonic()
    with devices.start(project, board) as running, open(out, "w", buffering=1) as f:
        dev = devices.open_device(running, baud=board.serial.baud)
        real_sync = dev.sync

        def counting_sync(timeout: float | None = None) -> None:
            nonlocal resyncs
            resyncs += 1
            real_sync(timeout)

        dev.sync = counting_sync  # every retry of the host side goes through a resync: count them
        try:
            info = dev.info()
            if info.model_sha256 != sha:
                raise DeviceError(f"{board.id}: device runs {info.model_sha256}, {tflite} is {sha}")
            rss_before = _rss(running.process.pid)
            header = {"type": "session", "board": board.id, "variant": variant, "model_sha256": sha,
                      "dataset": dataset.describe(), "machine": _machine(), "device": info.as_dict(),
                      "size": sizes, "heap_symbols": heap, "total": total, "batch": batch, "stream": stream}
            f.write(json.dumps(header, sort_keys=True) + "\n")
            for b in range(batches):
                count = min(batch, total - done)
                idx = int(loaded_idx[b])
                rec: dict[str, Any] = {"type": "batch", "batch": b, "image": idx, "count": count}
                try:
                    image = dataset.x_test[idx].tobytes()
                    dev.load(image)
                    res = dev.infer(count, 0)
                    run = dev.run()
                    rec.update(elapsed_us=res.elapsed_us, counter=run.counter,
                               raw_ok=run.raw == reference[idx],
                               results=list(res.results),
                               results_ok=tuple(round(v * 1000) for v in res.results)
                               == _milli(run.raw, out_scale, out_zp))
                    done += count
                    results_ok += int(rec["results_ok"] and rec["raw_ok"])
                    per_inference_us.append(res.elapsed_us / count)
                    fixed = dev.classify(dataset.x_test[0].tobytes())
                    counters.append(fixed.counter)
                    ok = 0
                    for i in streamed_idx[b]:
                        r = dev.classify(dataset.x_test[int(i)].tobytes())
                        ok += int(r.raw == reference[int(i)])
                    streamed += stream + 1
                    streamed_ok += ok + int(fixed.raw == reference[0])
                    rec.update(streamed=stream + 1, streamed_identical=ok + int(fixed.raw == reference[0]),
                               fixed_counter=fixed.counter, resyncs=resyncs)
                except DeviceError as e:  # counted and recorded; the run goes on if the device still answers
                    errors.append(str(e))
                    rec["error"] = str(e)
                    if not running.alive():
                        f.write(json.dumps(rec, sort_keys=True) + "\n")
                        break
                f.write(json.dumps(rec, sort_keys=True) + "\n")
                if (b + 1) % max(1, batches // 10) == 0:
                    print(f"{board.id}: {done} inferences, {streamed} streamed, {len(errors)} errors, "
                          f"{resyncs} resyncs, {time.monotonic() - t_start:.0f} s")
            rss_after = _rss(running.process.pid)
        finally:
            dev.close()

    window = max(1, len(per_inference_us) // 10)
    summary = {
        "board": board.id, "variant": variant, "backend": "native", "model_sha256": sha,
        "dataset": dataset.describe(), "machine": _machine(), "results_file": str(out),
        "inferences": done, "infer_batches": len(per_inference_us), "batch": batch,
        "streamed": streamed, "streamed_identical_to_tflm": streamed_ok,
        "batches_results_identical": results_ok,
        "protocol_errors": len(errors) + resyncs, "escaped_errors": errors[:5], "resyncs": resyncs,
        "device_clock_per_inference_us": {"first": per_inference_us[0] if per_inference_us else None,
                                          "last": per_inference_us[-1] if per_inference_us else None,
                                          "drift_percent": drift_percent(per_inference_us, window)
                                          if len(per_inference_us) >= 2 else None},
        "ed_run_counter_fixed_image": {"unit": info.counter_unit, "first": counters[0] if counters else None,
                                       "last": counters[-1] if counters else None,
                                       "drift_percent": drift_percent(counters, window)
                                       if len(counters) >= 2 and counters[0] > 0 else None},
        "memory": {"static_ram_bytes": sizes["ram"], "flash_bytes": sizes["flash"],
                   "arena_bytes": info.arena_bytes, "protocol_bytes": info.protocol_bytes,
                   "heap_symbols": heap, "process_rss_before": rss_before, "process_rss_after": rss_after,
                   "process_rss_growth_bytes": rss_after - rss_before,
                   "process": "firmware" if spec.kind == "host" else "qemu-system-arm (the emulator)"},
        "wall_seconds": round(time.monotonic() - t_start, 1),
        "counter_note": spec.counter_note,
    }
    write_json(results_dir() / f"long_run-{board.id}.json", summary)
    return summary


def _machine() -> dict[str, str]:
    return {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
            "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    """Run the long run on each board and print its figures; exit code 1 if any figure is not clean."""
    from edgedigit.models.data import load_dataset

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--boards", default="host,qemu-m4")
    p.add_argument("--variant", default="mlp")
    p.add_argument("--total", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--stream", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=None)
    args = p.parse_args(argv)
    dataset = load_dataset(args.data)
    tflite = _model(args.variant, dataset)
    clean = True
    for board in args.boards.split(","):
        s = run_board(board.strip(), args.variant, tflite, dataset, args.total, args.batch, args.stream, args.seed)
        mem, clk, cnt = s["memory"], s["device_clock_per_inference_us"], s["ed_run_counter_fixed_image"]
        print(f"{s['board']}: {s['inferences']} inferences in {s['infer_batches']} infer batches + "
              f"{s['streamed']} streamed ({s['streamed_identical_to_tflm']} identical to TFLM); "
              f"batches with identical results {s['batches_results_identical']}; "
              f"protocol errors {s['protocol_errors']} (resyncs {s['resyncs']}); "
              f"heap symbols {mem['heap_symbols'] or 'none'}; static RAM {mem['static_ram_bytes']} B, "
              f"arena {mem['arena_bytes']} B, protocol {mem['protocol_bytes']} B; "
              f"{mem['process']} RSS {mem['process_rss_before']} -> {mem['process_rss_after']} B; "
              f"per-inference {clk['first']:.2f} -> {clk['last']:.2f} us (drift {clk['drift_percent']:+.2f} %); "
              f"ed-run counter {cnt['first']} -> {cnt['last']} {cnt['unit']} (drift {cnt['drift_percent']:+.2f} %); "
              f"{s['wall_seconds']} s wall")
        clean &= (s["protocol_errors"] == 0 and not mem["heap_symbols"] and s["inferences"] == args.total
                  and s["streamed_identical_to_tflm"] == s["streamed"]
                  and s["batches_results_identical"] == s["infer_batches"])
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
