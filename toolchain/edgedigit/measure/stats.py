"""Statistics shared by every benchmark: latency summaries, drift, memory growth and the stress verdict.

Definitions (the same everywhere a figure is printed):

- percentiles use linear interpolation between closest ranks (numpy's default ``method="linear"``):
  for ``n`` sorted values the q-th percentile sits at rank ``(n - 1) * q / 100``;
- drift compares the last ``W`` per-iteration latencies with the first ``W`` (``W = 100``, or half the
  iterations when fewer than ``2 W`` were run): ``(m(last W) - m(first W)) / m(first W) * 100`` where ``m``
  is the median by default. The median, not the seed's mean, because on a shared machine one iteration
  delayed by another process moves a 100-sample mean by several percent without the runtime changing;
  the mean-based figure is recorded too (``stat="mean"``);
- memory growth is RSS after minus RSS before, in MB (1 MB = 2**20 bytes, as psutil users usually print);
- the stress verdict is "stable" when ``|drift| < 5 %``, growth ``< 10 MB`` and no errors, the seed's
  thresholds (the absolute value: a run that speeds up by 5 % is not steady either).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core.errors import EdgeDigitError

MB = 1 << 20
DRIFT_WINDOW = 100
DRIFT_LIMIT_PCT = 5.0
GROWTH_LIMIT_MB = 10.0


def _array(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        raise EdgeDigitError(f"{what}: no values to summarize (0 measurements)")
    if not np.all(np.isfinite(a)):
        raise EdgeDigitError(f"{what}: contains NaN or infinite values")
    return a


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks.

    Raises:
        EdgeDigitError: no values, non-finite values, or q outside 0..100.
    """
    if not 0.0 <= q <= 100.0:
        raise EdgeDigitError(f"percentile {q} is outside 0..100")
    return float(np.percentile(_array(values, "percentile"), q, method="linear"))


@dataclass(frozen=True)
class Summary:
    """Distribution of one set of measurements (all in the unit they were given in)."""

    n: int
    mean: float
    std: float
    min: float
    median: float
    p95: float
    p99: float
    max: float

    def scaled(self, factor: float) -> Summary:
        """The same summary with every value (not ``n``) multiplied by ``factor`` (e.g. s -> us)."""
        return Summary(self.n, *(getattr(self, k) * factor for k in ("mean", "std", "min", "median", "p95",
                                                                      "p99", "max")))

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("n", "mean", "std", "min", "median", "p95", "p99", "max")}


def summarize(values: Sequence[float] | np.ndarray, what: str = "latencies") -> Summary:
    """Count, mean, population std, min, median, p95, p99 and max of ``values``.

    Raises:
        EdgeDigitError: no values or non-finite values (the message names ``what``).
    """
    a = _array(values, what)
    p50, p95, p99 = np.percentile(a, [50, 95, 99], method="linear")
    return Summary(int(a.size), float(a.mean()), float(a.std()), float(a.min()), float(p50), float(p95),
                   float(p99), float(a.max()))


def drift_window(n: int, window: int = DRIFT_WINDOW) -> int:
    """The window the drift compares: ``window``, or ``n // 2`` when fewer than ``2 * window`` values."""
    if n < 2:
        raise EdgeDigitError(f"drift needs at least 2 iterations, got {n}")
    return min(window, n // 2)


def drift_percent(per_iteration: Sequence[float] | np.ndarray, window: int = DRIFT_WINDOW,
                  stat: str = "median") -> float:
    """Percent change of the last ``window`` values against the first ``window`` (their median or mean).

    Raises:
        EdgeDigitError: fewer than 2 values, an unknown ``stat``, or a first window that is not positive.
    """
    if stat not in ("median", "mean"):
        raise EdgeDigitError(f"drift statistic '{stat}' unknown; choose median or mean")
    a = _array(per_iteration, "drift")
    w = drift_window(a.size, window)
    m = np.median if stat == "median" else np.mean
    first, last = float(m(a[:w])), float(m(a[-w:]))
    if first <= 0.0:
        raise EdgeDigitError(f"drift: the first {w} iterations have {stat} {first}; need positive timings")
    return (last - first) / first * 100.0


def growth_mb(rss_before_bytes: int, rss_after_bytes: int) -> float:
    """Memory growth in MB (2**20 bytes): RSS after minus RSS before (negative when memory was returned)."""
    return (int(rss_after_bytes) - int(rss_before_bytes)) / MB


@dataclass(frozen=True)
class Verdict:
    """The stress test's verdict with the reasons it is not stable (empty when stable)."""

    stable: bool
    reasons: tuple[str, ...]

    @property
    def label(self) -> str:
        return "stable" if self.stable else "unstable"

    def __str__(self) -> str:
        return self.label if self.stable else f"unstable ({'; '.join(self.reasons)})"


def verdict(drift_pct: float, growth: float, errors: int = 0, *, drift_limit: float = DRIFT_LIMIT_PCT,
            growth_limit: float = GROWTH_LIMIT_MB) -> Verdict:
    """The seed's verdict: stable when ``|drift| < drift_limit`` %, growth ``< growth_limit`` MB, no errors."""
    reasons = []
    if not abs(drift_pct) < drift_limit:
        reasons.append(f"drift {drift_pct:+.2f} % (limit +-{drift_limit:g} %)")
    if not growth < growth_limit:
        reasons.append(f"memory growth {growth:.2f} MB (limit {growth_limit:g} MB)")
    if errors:
        reasons.append(f"{errors} error(s)")
    return Verdict(not reasons, tuple(reasons))
