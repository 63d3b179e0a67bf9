"""The stress loop's figures with scripted clocks, memory and runtimes (no model needed)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgedigit.core.errors import EdgeDigitError
from edgedigit.measure import stats
from edgedigit.measure.bench_stress import StressConfig, device_drift, stress_loop

MB = stats.MB


class ScriptedClock:
    """Returns a time that advances by the next duration between each start/stop pair of calls."""

    def __init__(self, durations):
        self.t = 0.0
        self.durations = iter(durations)
        self.started = False

    def __call__(self):
        if self.started:
            self.t += next(self.durations)
        self.started = not self.started
        return self.t


def _images(n=4):
    return np.arange(n * 784, dtype=np.uint32).reshape(n, 28, 28).astype(np.uint8)


def _run(predict, durations, rss_values, iterations=1000, warmup=2, cpu_durations=None, clock="cpu"):
    cfg = StressConfig(iterations=iterations, batch=4, warmup=warmup, clock=clock)
    rss = iter(rss_values)
    return stress_loop(predict, _images(), cfg, rss=lambda: next(rss), clock=ScriptedClock(durations),
                       cpu_clock=ScriptedClock(cpu_durations or durations))


def _constant(images):
    return np.arange(len(images))


def test_stable_run_figures():
    durations = [0.010] * 100 + [0.5] * 800 + [0.0104] * 100
    rss = [100 * MB] + [100 * MB + i * 1024 for i in range(1000)]
    r = _run(_constant, durations, rss)
    assert r["drift_pct"] == pytest.approx(4.0, abs=1e-9)
    assert r["drift_mean_pct"] == pytest.approx(4.0, abs=1e-9)
    assert r["cpu_drift_pct"] == pytest.approx(4.0, abs=1e-9)
    assert r["latency_ms"]["median"] == pytest.approx(500.0)
    assert r["latency_ms"]["n"] == 1000
    assert r["latency_ms"]["min"] == pytest.approx(10.0)
    assert r["growth_mb"] == pytest.approx(999 * 1024 / MB)
    assert r["errors"] == 0 and r["verdict"] == "stable" and r["verdict_reasons"] == []
    assert r["per_image_us"] == pytest.approx(500.0 * 1e3 / 4)
    assert len(r["iteration_ms"]) == 1000 and r["drift_window"] == 100


def test_drift_and_growth_make_it_unstable():
    durations = [0.010] * 100 + [0.010] * 800 + [0.012] * 100  # +20 %
    rss = [50 * MB] + [50 * MB] * 999 + [62 * MB]
    r = _run(_constant, durations, rss)
    assert r["drift_pct"] == pytest.approx(20.0)
    assert r["growth_mb"] == 12.0
    assert r["verdict"] == "unstable"
    assert r["verdict_reasons"] == ["drift +20.00 % (limit +-5 %)", "memory growth 12.00 MB (limit 10 MB)"]


def test_verdict_clock_cpu_or_wall():
    # the machine got busy: wall time +30 % at the end, the runtime's own CPU time unchanged
    wall = [0.010] * 100 + [0.013] * 100
    cpu = [0.008] * 200
    r = _run(_constant, wall, [MB] * 201, iterations=200, cpu_durations=cpu)
    assert r["drift_clock"] == "cpu" and r["drift_pct"] == 0.0 and r["verdict"] == "stable"
    assert r["wall_drift_pct"] == pytest.approx(30.0)
    assert r["cpu_ms"]["median"] == pytest.approx(8.0) and r["latency_ms"]["median"] == pytest.approx(11.5)
    r = _run(_constant, wall, [MB] * 201, iterations=200, cpu_durations=cpu, clock="wall")
    assert r["drift_pct"] == pytest.approx(30.0) and r["verdict"] == "unstable"
    with pytest.raises(EdgeDigitError, match="--clock tick"):
        StressConfig(clock="tick").check()


def test_errors_raised_and_nondeterminism_are_counted():
    calls = itertools.count()

    def flaky(images):
        k = next(calls)
        if k in (5, 7):  # 2 warm-up calls, so iterations 3 and 5 raise
            raise RuntimeError("invoke failed")
        out = np.arange(len(images))
        if k == 9:  # one iteration answers differently
            out[0] = 9
        return out

    r = _run(flaky, [0.01] * 20, [MB] * 21, iterations=20)
    assert r["errors_raised"] == 2 and r["errors_mismatch"] == 1 and r["errors"] == 3
    assert r["first_error"] == "RuntimeError: invoke failed"
    assert r["verdict"] == "unstable" and r["verdict_reasons"] == ["3 error(s)"]
    assert r["drift_window"] == 10


def test_bad_settings_are_named():
    with pytest.raises(EdgeDigitError, match="--iterations 1"):
        StressConfig(iterations=1).check()
    with pytest.raises(EdgeDigitError, match="--batch 0"):
        StressConfig(batch=0).check()


def test_device_drift_uses_the_counters():
    d = device_drift([1000] * 100 + [1020] * 100)
    assert d["drift_pct"] == pytest.approx(2.0) and d["verdict"] == "stable" and d["n"] == 200
    assert device_drift([1000] * 100 + [1100] * 100)["verdict"] == "unstable"


def test_device_long_run_drift_through_the_cli(build_dir, monkeypatch):
    """`bench stress --board B`: a long device run (bench device, faked at its boundary) -> counter drift."""
    import json

    from typer.testing import CliRunner

    import edgedigit.measure.bench_device as device
    from edgedigit.cli import app
    from edgedigit.core.results import read_jsonl

    def fake_bench_device(board, variant, samples, data=None, progress=True, log=print):
        path = build_dir / "results" / f"device-{board}-{variant}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [{"type": "session", "board": board, "variant": variant, "backend": "native", "samples": samples,
                  "counter_unit": "instructions", "counter_note": "emulated instructions, not cycles", "dataset": {}}]
        lines += [{"type": "sample", "index": i, "label": 1, "predicted": 1, "agree": True, "us": 0.0,
                   "counter": 100_000 if i < samples // 2 else 106_000} for i in range(samples)]
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        return {}

    monkeypatch.setattr(device, "bench_device", fake_bench_device)
    res = CliRunner().invoke(app, ["bench", "stress", "--board", "qemu-m4", "--variant", "mlp", "--samples", "400"])
    assert res.exit_code == 0, res.output
    assert "mlp on qemu-m4: unstable" in res.output and "+6.00 %" in res.output
    assert "(emulated instructions, not cycles)" in res.output
    rec = read_jsonl(build_dir / "results" / "stress-device.jsonl")[-1]
    assert (rec["board"], rec["samples"], rec["drift_window"], rec["verdict"]) == ("qemu-m4", 400, 100, "unstable")
    assert rec["drift_pct"] == pytest.approx(6.0)
