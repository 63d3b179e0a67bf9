"""``edgedigit select``: the most accurate int8 variant that fits a board (optimizing + satisficing metrics).

Accuracy is the optimizing metric (card ``int8_accuracy``: LiteRT int8 on the test set, rfe-lr's fixed-point
form); flash, RAM and an optional minimum accuracy are the satisficing ones. Flash and RAM come from the
export budget check (``Backend.requirement`` in :mod:`edgedigit.targets.backends`): flash = model bytes +
the board's runtime estimate for the backend, RAM = activation arena (TFLM arena measured at quantization +
margin, or the native buffer plan) + the runtime estimate. The ranking is the one export uses without
``--variant`` (:func:`edgedigit.targets.backends.choose`). Each trained variant left out gets the reason
why; a variant no backend of the board can run is one of them, never a failure of the whole selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import EdgeDigitError, ModelTooLargeError

if TYPE_CHECKING:
    from ..targets.backends import Fit


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
    backend_problems: dict[str, str] = field(default_factory=dict)  # backend -> why it cannot run the variant

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
                "reasons": list(self.reasons), "left_out": self.left_out,
                "backend_problems": dict(self.backend_problems)}


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


def _candidate(fit: Fit) -> Candidate:
    """A :class:`Candidate` from a judged variant (``edgedigit.targets.backends.Fit``)."""
    card = fit.card
    cand = Candidate(fit.name, fit.accuracy, card.size_bytes if card is not None else None, reasons=list(fit.reasons),
                     backend_problems=dict(fit.problems))
    if fit.requirement is not None:
        cand.backend, cand.requirement = fit.requirement.backend, fit.requirement.as_dict()
    return cand


def judge(board: Any, variant: str, min_accuracy: float | None = None) -> Candidate:
    """Whether ``variant`` (trained and quantized) can run on ``board``, with which backend, or why not."""
    from ..targets.export import judge_variant

    return _candidate(judge_variant(board, variant, min_accuracy))


def select(board: str, min_accuracy: float | None = None, boards_directory: Path | None = None) -> Selection:
    """Judge every trained variant against ``board`` and pick the most accurate one that fits.

    Ties go to the smaller flash need, then the name (:func:`edgedigit.targets.backends.choose`).
    ``Selection.chosen`` is None when nothing fits.

    Raises:
        BoardError: unknown board. NotTrainedError: no trained variant at all.
    """
    from ..targets.backends import choose
    from ..targets.boards import load_board
    from ..targets.export import judge_trained

    b = load_board(board, boards_directory)
    fits = judge_trained(b, min_accuracy)
    candidates = [_candidate(f) for f in fits]
    by_name = {c.variant: c for c in candidates}
    ranked = [by_name[f.name] for f in choose(fits)]
    chosen = ranked[0] if ranked else None
    for c in ranked[1:]:
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
