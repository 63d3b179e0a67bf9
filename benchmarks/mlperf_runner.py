"""MLPerf Tiny's reference runner, unedited, in performance mode against edgedigit firmware.

    python benchmarks/mlperf_runner.py [--boards qemu-m4 host] [--models ad01 ic01 kws01 vww01] [--stock]

For each of the four MLPerf Tiny reference models (``../shared/third_party/mlperf-tiny/models``) and each
emulated board: export it (native backend; the model id the runner knows, e.g. ``kws01``, is derived from
the file name and answered by ``profile%``), build it, start it with a pseudo-terminal as its serial port
(the ``host`` board's own pty; QEMU with ``-serial pty``), and run the runner from
``../shared/third_party/mlperf-tiny/runner`` through ``benchmarks/mlperf_drive.py`` (its own ``run_test``,
DUT, Script and ``summarize_result``; only its USB port discovery is replaced by the pty). The runner's
inputs are seeded random files of the model's input size (the MLPerf datasets are not shipped here). The
runner's own lines are printed: each window's throughput and its "Median throughput" line.

The runner refuses a performance run shorter than 10 s of wall time ("ERROR 2"); its stock
``tests_performance.yaml`` counts (e.g. ``infer 20 5`` for ic01) are sized for a reference board at 80 MHz.
By default the infer counts are raised, as a submitter sizes them, so that each of the 5 windows lasts about
4 s here (measured with ``infer`` before the run); ``--stock`` uses the runner's yaml as it is. On
qemu-m4 the runner's throughput is in emulated time (``-icount shift=0``: one emulated ns per instruction),
not a real chip's.
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "third_party" / "mlperf-tiny"
RUNNER = SHARED / "runner"
MODELS = {"ad01": "ad01_int8.tflite", "ic01": "pretrainedResnet_quant.tflite", "kws01": "kws_ref_model.tflite",
          "vww01": "vww_96_int8.tflite"}
WINDOW_S = 4.0  # wall seconds per window (5 windows: twice the runner's 10 s minimum: a loaded machine varies)
FILES = 5  # the performance script loads one file per window


def write_dataset(root: Path, model_id: str, input_bytes: int, classes: int, seed: int = 0) -> Path:
    """The runner's dataset folder for ``model_id``: seeded random input files and ``y_labels.csv``."""
    folder = root / model_id
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(FILES):
        name = f"input_{i}.bin"
        (folder / name).write_bytes(rng.integers(0, 256, input_bytes, dtype=np.uint8).tobytes())
        rows.append(f"{name},{classes},{i % max(classes, 1)},{input_bytes},{input_bytes}")
    (folder / "y_labels.csv").write_text("\n".join(rows) + "\n")
    return root


def scaled_tests(out: Path, model_id: str, seconds_per_inference: float) -> Path:
    """The runner's tests_performance.yaml with ``model_id``'s infer count raised to last WINDOW_S per window."""
    import yaml

    tests = yaml.safe_load((RUNNER / "tests_performance.yaml").read_text())
    loop = tests[model_id]["script"][0]
    body = next(iter(loop.values()))
    for k, step in enumerate(body):
        if isinstance(step, str) and step.startswith("infer "):
            _, n, w = step.split()
            n = max(int(n), math.ceil(WINDOW_S / max(seconds_per_inference, 1e-9)))
            body[k] = f"infer {n} {w}"
    out.write_text(yaml.safe_dump(tests, sort_keys=False))
    return out


def calibrate(port: str, input_bytes: int) -> float:
    """Wall seconds per inference on the device: ``infer K`` against ``infer 1`` over its port (the round trip
    cancels), K raised until the difference is at least 0.2 s."""
    from edgedigit.targets.protocol import Device

    def wall(dev: Device, count: int) -> float:
        t0 = time.monotonic()
        dev.infer(count, 0)
        return time.monotonic() - t0

    with Device(port, timeout=120.0, open_timeout=10.0) as dev:
        dev.sync()
        dev.load(bytes(np.random.default_rng(1).integers(0, 256, input_bytes, dtype=np.uint8)))
        k = 4
        while True:
            one, many = wall(dev, 1), wall(dev, k)
            if many - one >= 0.2 or k >= 1_000_000:
                return max(many - one, 1e-6) / (k - 1)
            k *= 8


def run_runner(port: str, model_id: str, input_bytes: int, classes: int, work: Path, stock: bool = False
               ) -> tuple[list[str], str]:
    """Run the unedited runner in performance mode on ``port``; returns (its output lines, its RESULT-JSON)."""
    datasets = write_dataset(work / "datasets", model_id, input_bytes, classes)
    tests = RUNNER / "tests_performance.yaml"
    if not stock:
        tests = scaled_tests(work / "tests_performance.yaml", model_id, calibrate(port, input_bytes))
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mlperf_drive.py"), str(RUNNER), port,
                           str(datasets), str(tests), "p"], cwd=work, capture_output=True, text=True, timeout=1800)
    lines = done.stdout.splitlines()
    if done.returncode != 0:
        raise RuntimeError(f"the runner failed (exit {done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    result = next(ln[len("RESULT-JSON "):] for ln in lines if ln.startswith("RESULT-JSON "))
    return lines, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", nargs="*", default=["qemu-m4", "host"])
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--backend", default="native")
    ap.add_argument("--stock", action="store_true", help="the runner's tests_performance.yaml as it is")
    args = ap.parse_args()
    from edgedigit.core.errors import EdgeDigitError
    from edgedigit.core.int8 import io_spec
    from edgedigit.targets import devices
    from edgedigit.targets.boards import load_board
    from edgedigit.targets.export import export

    with tempfile.TemporaryDirectory() as tmp:
        for model_id in args.models:
            path = SHARED / "models" / MODELS[model_id]
            for board in args.boards:
                print(f"== {model_id} ({path.name}) on {board}, {args.backend} backend", flush=True)
                try:
                    res = export(board, model=path, backend=args.backend, out=Path(tmp) / f"{board}-{model_id}")
                except EdgeDigitError as e:
                    print(f"   pending: {e}")
                    continue
                devices.make(res.path)
                spec = io_spec(res.model.graph)
                work = Path(tmp) / f"run-{board}-{model_id}"
                work.mkdir()
                with devices.start(res.path, load_board(board), pty=True) as running:
                    lines, _ = run_runner(running.url, model_id, spec.input_bytes, spec.outputs, work, args.stock)
                for ln in lines:
                    if re.search(r"Throughput|Median throughput|ERROR|Device model retrieved|Runtime:", ln):
                        print("   " + ln.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
