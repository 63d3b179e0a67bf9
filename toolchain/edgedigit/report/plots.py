"""The report's figures (matplotlib, Agg backend): each title says which dataset it was measured on.

Every function takes plain values (no file reading), writes one PNG and returns its title.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def dataset_label(describe: dict | None, used: int | None = None) -> str:
    """``Dataset.label()`` from a recorded ``Dataset.describe()`` dict (cards and results hold those).

    With ``used`` smaller than the test set: ``mnist test (first 1,000 of 10,000)``.
    """
    if not describe:
        return "unknown dataset"
    tag = "FALLBACK " if describe.get("fallback") else ""
    total = int(describe.get("test", 0))
    count = f"first {used:,} of {total:,}" if used is not None and used < total else f"{total:,}"
    return f"{tag}{describe.get('name', '?')} test ({count})"


def train_label(describe: dict | None) -> str:
    """Like :func:`dataset_label` for the training split, e.g. ``mnist train (60,000)``."""
    if not describe:
        return "unknown dataset"
    tag = "FALLBACK " if describe.get("fallback") else ""
    return f"{tag}{describe.get('name', '?')} train ({int(describe.get('train', 0)):,})"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (smaller or equal size AND higher or equal accuracy,
    one of them strictly), sorted by size: the best accuracy available at each size."""
    idx = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in idx:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def accuracy_vs_size(path: Path, variants: Sequence[dict], flash_limits: Sequence[tuple[str, int]],
                     dataset: str) -> str:
    """Scatter of int8 accuracy (%) against model size (bytes, log scale), Pareto front, flash limits.

    Args:
        variants: dicts with ``variant``, ``size_bytes``, ``accuracy`` (0..1).
        flash_limits: (board name, flash bytes available to the application) drawn as vertical lines
            (the caller leaves out boards whose limit is not a microcontroller's, e.g. ``host``).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    pts = [(float(v["size_bytes"]), 100.0 * float(v["accuracy"])) for v in variants]
    for v, (x, y) in zip(variants, pts, strict=True):
        ax.scatter([x], [y], s=40, zorder=3)
        ax.annotate(v["variant"], (x, y), textcoords="offset points", xytext=(5, 5), fontsize=9)
    front = pareto_front(pts)
    if front:
        fx, fy = zip(*[pts[i] for i in front], strict=True)
        ax.step(fx, fy, where="post", color="tab:red", lw=1.5, marker="o", mfc="none", ms=11,
                label="Pareto front (most accurate up to each size)", zorder=2)
    ys = [y for _, y in pts] or [90.0]
    lo, hi = min(ys) - 1.0, min(100.0, max(ys) + 0.8)
    ax.set_ylim(lo, hi)
    for name, flash in flash_limits:
        ax.axvline(flash, color="gray", ls="--", lw=1)
        ax.text(flash, hi, f"{name} flash ", rotation=90, fontsize=8, color="dimgray", ha="right", va="top")
    ax.set_xscale("log")
    ax.set_xlabel("model size in flash (bytes, log scale; int8 .tflite or C tables)")
    ax.set_ylabel("int8 accuracy (%)")
    xs = [x for x, _ in pts] + [f for _, f in flash_limits]
    if xs:
        ax.set_xlim(min(xs) / 2, max(xs) * 2)
    title = f"int8 accuracy vs model size, measured on {dataset}"
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return title


def latency_distributions(path: Path, samples: dict[str, Sequence[float]], dataset: str, machine: str) -> str:
    """Box plots of per-image latency (µs, log scale), one per ``variant / runtime`` label."""
    plt = _plt()
    labels = list(samples)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 5), dpi=110)
    if labels:
        ax.boxplot([np.asarray(samples[k], float) for k in labels], whis=(1, 99), showfliers=False)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=35, ha="right", fontsize=8)
        ax.set_yscale("log")
    ax.set_ylabel("per-image latency (µs, log scale; whiskers p1..p99)")
    title = f"latency per image by runtime on {machine}, images from {dataset}"
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return title


def firmware_instructions(path: Path, models: Sequence[str], series: dict[str, Sequence[float | None]],
                          board: str, dataset: str, unit: str) -> str:
    """Grouped bars: counter per inference (log scale) of each firmware (``series``: label -> one value per model,
    None where it was not measured), per model, on an emulated board."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(models) + 2), 4.5), dpi=110)
    width = 0.8 / max(1, len(series))
    x = np.arange(len(models))
    for i, (label, values) in enumerate(series.items()):
        vals = [np.nan if v is None else float(v) for v in values]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=label)
        for b, v in zip(bars, vals, strict=False):
            if np.isfinite(v):
                ax.annotate(f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.0f} k", (b.get_x() + b.get_width() / 2, v),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, list(models))
    ax.set_yscale("log")
    ax.set_ylabel(f"{unit} per inference (median, log scale)")
    title = f"{unit} per inference on {board}, native vs TFLM, inputs: {dataset}"
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return title


def search_front(path: Path, points: Sequence[dict], board: str) -> str:
    """Accuracy (%) against instructions per inference (log scale): a search's Pareto front and the
    hand-designed variants (``points``: ``label``, ``accuracy`` 0..1, ``instructions``, ``kind`` front|variant)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    styles = {"front": ("tab:red", "o", "search front (validation accuracy)"),
              "variant": ("tab:blue", "s", "hand-designed variants (test accuracy)")}
    for kind, (color, marker, label) in styles.items():
        pts = sorted((float(p["instructions"]), 100.0 * float(p["accuracy"]), p["label"]) for p in points
                     if p["kind"] == kind)
        if not pts:
            continue
        xs, ys, names = zip(*pts, strict=True)
        ax.plot(xs, ys, ls="none", color=color, marker=marker, label=label)
        for x, y, name in pts:
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("emulated Cortex-M4 instructions per inference (native backend, log scale)")
    ax.set_ylabel("int8 accuracy (%)")
    title = f"architecture search for {board}: accuracy vs instructions"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return title


def confusion_matrix(path: Path, matrix: np.ndarray, model: str, dataset: str) -> str:
    """Heat map of a 10x10 confusion matrix (rows: true label, columns: predicted), counts in the cells."""
    plt = _plt()
    m = np.asarray(matrix, dtype=np.int64)
    fig, ax = plt.subplots(figsize=(6.5, 6), dpi=110)
    ax.imshow(np.log1p(m), cmap="Blues")
    for (i, j), c in np.ndenumerate(m):
        ax.text(j, i, str(c), ha="center", va="center", fontsize=7,
                color="white" if m[i, j] > m.max() / 3 else "black")
    ax.set_xticks(range(m.shape[1]))
    ax.set_yticks(range(m.shape[0]))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    acc = np.trace(m) / max(1, m.sum())
    title = f"confusion matrix of {model} ({100 * acc:.2f} %) on {dataset}"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return title


def pixel_heatmap(path: Path, pixels: Sequence[int], weights: np.ndarray | None, dataset: str,
                  mean_image: np.ndarray | None = None) -> str:
    """The selected pixels on a 28x28 grid, coloured by the sum of |weights| over the classes."""
    plt = _plt()
    grid = np.full(784, np.nan)
    pix = np.asarray(pixels, dtype=np.int64)
    grid[pix] = np.abs(np.asarray(weights, float)).sum(axis=0) if weights is not None else 1.0
    fig, ax = plt.subplots(figsize=(6, 5.5), dpi=110)
    if mean_image is not None:
        ax.imshow(np.asarray(mean_image, float).reshape(28, 28), cmap="Greys", alpha=0.35)
    im = ax.imshow(grid.reshape(28, 28), cmap="viridis")
    fig.colorbar(im, ax=ax, fraction=0.046, label="sum over classes of |int8 weight|")
    ax.set_xticks(range(0, 28, 4))
    ax.set_yticks(range(0, 28, 4))
    title = f"rfe-lr: the {len(pix)} selected pixels (28x28), chosen by RFE on {dataset}"
    ax.set_title(title.replace(", chosen", ",\nchosen"), fontsize=10)  # two lines: fits the figure
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return title
