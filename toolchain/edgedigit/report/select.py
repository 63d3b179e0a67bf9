"""``edgedigit select``: the most accurate int8 variant that fits a board (optimizing + satisficing metrics).

Accuracy is the optimizing metric (card ``int8_accuracy``: LiteRT int8 on the test set, rfe-lr's fixed-point
form); flash, RAM and an optional minimum accuracy are the satisficing ones. Flash and RAM come from the
export budget check (:func:`edgedigit.firmware.requirement`): flash = model bytes + the board's runtime
estimate for the backend, RAM = activation arena (TFLM arena measured at quantization + margin, or the
native buffer plan) + the runtime estimate. Each trained variant left out gets the reason why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import EdgeDigitError, ModelTooLargeError, NotTrainedError


@dataclass
class Candidate:
    """One trained variant judged against the board."""

    variant: str
    int8_accuracy: float | None
    size_bytes: int | None
    backend: str | None = None  # the first backend (board order) it fits with
    requirement: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)  # why it cannot be chosen (empty: eligible)
    ranked_below: str | None = None  # eligible but another eligible variant is better

    @property
    def eligible(self) -> bool:
        return not self.reasons

    @property
    def left_out(self) -> str | None:
        """Why this variant is not the selection (None for the selected one)."""
        return "; ".join(self.reasons) if self.reasons else self.ranked_below

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "int8_accuracy": self.int8_accuracy, "size_bytes": self.size_bytes,
                "backend": self.backend, "requirement": self.requirement, "eligible": self.eligible,
                "reasons": list(self.reasons), "left_out": self.left_out}


@dataclass
class Selection:
    board: Any  # edgedigit.boards.Board
    min_accuracy: float | None
    chosen: Candidate | None
    candidates: list[Candidate]

    def as_dict(self) -> dict[str, Any]:
        return {"board": self.board.id, "flash_bytes": self.board.flash_bytes, "ram_bytes": self.board.ram_bytes,
                "min_accuracy": self.min_accuracy, "selected": self.chosen.variant if self.chosen else None,
                "backend": self.chosen.backend if self.chosen else None,
                "candidates": [c.as_dict() for c in self.candidates]}

    def nothing_fits_message(self) -> str:
        """One line: the board, its limits and every variant's reason."""
        need = f" with int8 accuracy >= {_pct(self.min_accuracy)}" if self.min_accuracy is not None else ""
        why = "; ".join(f"{c.variant}: {' / '.join(c.reasons)}" for c in self.candidates)
        return (f"no trained variant fits {self.board.id} ({self.board.flash_bytes:,} B flash, "
                f"{self.board.ram_bytes:,} B RAM){need}: {why}")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def parse_min_accuracy(value: float | None) -> float | None:
    """``--min-accuracy`` as a fraction: 0 < A <= 1 is a fraction, 1 < A <= 100 a percentage.

    Raises:
        EdgeDigitError: outside (0, 100].
    """
    if value is None:
        return None
    if not 0 < value <= 100:
        raise EdgeDigitError(f"--min-accuracy {value}: give a fraction (0.985) or a percentage (98.5) above 0")
    return value / 100 if value > 1 else float(value)


def judge(board: Any, variant: str, min_accuracy: float | None = None) -> Candidate:
    """Whether ``variant`` (trained and quantized) can run on ``board``, with which backend, or why not."""
    from ..core.store import read_card
    from ..targets.export import backend_problem, requirement, resolve_model

    card = read_card(variant)
    acc = card.get("int8_accuracy")
    cand = Candidate(variant, acc, card.get("size_bytes"))
    try:
        src = resolve_model(variant=variant)
    except EdgeDigitError as e:  # not quantized, or a broken artifact: say which
        cand.reasons.append(str(e))
        return cand
    if acc is None:
        cand.reasons.append(f"its card has no int8 accuracy: run `edgedigit quantize {variant}`")
    elif min_accuracy is not None and acc < min_accuracy:
        cand.reasons.append(f"int8 accuracy {_pct(acc)} < required {_pct(min_accuracy)}")
    problems = {b: backend_problem(board, src, b) for b in board.backends}
    usable = [b for b, p in problems.items() if p is None]
    if not usable:
        cand.reasons.append("no backend of the board runs it (" + "; ".join(p for p in problems.values() if p) + ")")
        return cand
    shortfalls = []
    for backend in usable:
        measured = card.get("tflm_arena_bytes") if backend == "tflm" else None
        req = requirement(board, src, backend, measured_arena=measured)
        if req.fits:
            cand.backend, cand.requirement = backend, req.as_dict()
            return cand
        shortfalls.append(req.shortfall())
    cand.reasons.append("too large: " + "; ".join(shortfalls))
    return cand


def select(board: str, min_accuracy: float | None = None, boards_directory: Path | None = None) -> Selection:
    """Judge every trained variant against ``board`` and pick the most accurate one that fits.

    Ties go to the smaller flash need, then the name. ``Selection.chosen`` is None when nothing fits.

    Raises:
        BoardError: unknown board. NotTrainedError: no trained variant at all.
    """
    from ..core.paths import models_dir
    from ..targets.boards import load_board
    from ..targets.export import trained_variants

    b = load_board(board, boards_directory)
    names = trained_variants()
    if not names:
        raise NotTrainedError(f"no trained variants in {models_dir()}: run `edgedigit train` and `edgedigit quantize` first")
    candidates = [judge(b, name, min_accuracy) for name in names]
    eligible = sorted((c for c in candidates if c.eligible),
                      key=lambda c: (-c.int8_accuracy, c.requirement["flash"], c.variant))
    chosen = eligible[0] if eligible else None
    for c in eligible[1:]:
        if c.int8_accuracy < chosen.int8_accuracy:
            c.ranked_below = (f"fits, but less accurate than {chosen.variant} "
                              f"({_pct(c.int8_accuracy)} < {_pct(chosen.int8_accuracy)})")
        else:
            c.ranked_below = f"fits, as accurate as {chosen.variant}, which needs less flash or comes first by name"
    return Selection(b, min_accuracy, chosen, candidates)


def require(selection: Selection) -> Candidate:
    """The chosen candidate.

    Raises:
        ModelTooLargeError: nothing fits (the message names every variant's reason).
    """
    if selection.chosen is None:
        raise ModelTooLargeError(selection.nothing_fits_message())
    return selection.chosen
