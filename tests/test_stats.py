"""Statistics of the benchmarks on synthetic timings with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from edgedigit.core.errors import EdgeDigitError
from edgedigit.measure import stats


def test_percentiles_interpolate_between_ranks():
    values = list(range(101))  # 0..100: the q-th percentile is q itself
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(values)
    for q in (0, 50, 95, 99, 100):
        assert stats.percentile(shuffled, q) == float(q)
    # 4 values: rank (n-1)*q/100 = 1.5 for the median, 2.85 for p95, 2.97 for p99
    assert stats.percentile([40, 10, 30, 20], 50) == 25.0
    assert stats.percentile([40, 10, 30, 20], 95) == pytest.approx(38.5, abs=1e-12)
    assert stats.percentile([40, 10, 30, 20], 99) == pytest.approx(39.7, abs=1e-12)


def test_summary_values():
    s = stats.summarize([3.0, 1.0, 2.0, 4.0, 100.0])
    assert (s.n, s.min, s.median, s.max, s.mean) == (5, 1.0, 3.0, 100.0, 22.0)
    assert s.p95 == pytest.approx(4 + 0.8 * 96, abs=1e-9)  # rank 3.8 between 4 and 100
    assert s.p99 == pytest.approx(4 + 0.96 * 96, abs=1e-9)
    assert s.std == pytest.approx(np.std([3, 1, 2, 4, 100]))
    us = s.scaled(1e6)
    assert us.n == 5 and us.median == 3e6 and us.max == 100e6


def test_summary_rejects_empty_and_nan():
    with pytest.raises(EdgeDigitError, match="latencies: no values"):
        stats.summarize([])
    with pytest.raises(EdgeDigitError, match="NaN"):
        stats.summarize([1.0, float("nan")])
    with pytest.raises(EdgeDigitError, match="outside 0..100"):
        stats.percentile([1.0], 101)


def test_drift_compares_first_and_last_100():
    timings = np.concatenate([np.full(100, 100.0), np.full(800, 1000.0), np.full(100, 105.0)])
    assert stats.drift_percent(timings) == 5.0  # the middle 800 do not count
    assert stats.drift_percent(np.concatenate([np.full(100, 200.0), np.full(100, 190.0)])) == -5.0


def test_drift_uses_medians_so_one_delayed_iteration_does_not_count():
    first = np.full(100, 10.0)
    last = np.full(100, 10.0)
    last[50] = 60.0  # one iteration delayed by another process: +50 on a sum of 1000
    timings = np.concatenate([first, last])
    assert stats.drift_percent(timings) == 0.0
    assert stats.drift_percent(timings, stat="mean") == pytest.approx(5.0, abs=1e-12)
    with pytest.raises(EdgeDigitError, match="statistic 'mode' unknown"):
        stats.drift_percent(timings, stat="mode")


def test_drift_window_halves_short_runs():
    assert stats.drift_window(1000) == 100
    assert stats.drift_window(150) == 75
    assert stats.drift_window(3) == 1
    timings = [10.0] * 75 + [11.0] * 75
    assert stats.drift_percent(timings) == pytest.approx(10.0, abs=1e-12)
    with pytest.raises(EdgeDigitError, match="at least 2 iterations, got 1"):
        stats.drift_percent([1.0])
    with pytest.raises(EdgeDigitError, match="positive timings"):
        stats.drift_percent([0.0, 1.0])


def test_growth_in_mebibytes():
    assert stats.growth_mb(100 * stats.MB, 112 * stats.MB) == 12.0
    assert stats.growth_mb(3 * stats.MB, stats.MB // 2 + 2 * stats.MB) == -0.5


@pytest.mark.parametrize(
    ("drift", "growth", "errors", "stable", "reason"),
    [
        (0.0, 0.0, 0, True, None),
        (4.99, 9.99, 0, True, None),
        (-4.99, -3.0, 0, True, None),
        (5.0, 0.0, 0, False, "drift +5.00 % (limit +-5 %)"),
        (-5.0, 0.0, 0, False, "drift -5.00 % (limit +-5 %)"),
        (1.0, 10.0, 0, False, "memory growth 10.00 MB (limit 10 MB)"),
        (1.0, 1.0, 3, False, "3 error(s)"),
    ],
)
def test_verdict_thresholds(drift, growth, errors, stable, reason):
    v = stats.verdict(drift, growth, errors)
    assert v.stable is stable
    assert v.label == ("stable" if stable else "unstable")
    if reason:
        assert v.reasons == (reason,)
        assert str(v) == f"unstable ({reason})"
    else:
        assert v.reasons == () and str(v) == "stable"


def test_verdict_lists_every_reason():
    v = stats.verdict(12.5, 20.0, 1)
    assert len(v.reasons) == 3 and not v.stable
