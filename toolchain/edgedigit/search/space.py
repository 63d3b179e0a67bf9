"""The search space: what ``edgedigit search`` may choose, as Optuna define-by-run suggestions.

One trial draws a spec (:mod:`edgedigit.models.variants.searched`):

- ``family``: ``conv`` or ``mlp`` (``--family`` may keep one; ``mlp`` only on a board whose RAM cannot hold a
  conv net's first activation, 28 x 28 x the narrowest width: the Uno);
- conv: ``stages`` (1-3), per stage ``width{i}`` (:data:`WIDTHS`), ``kernel{i}`` (3 or 5), ``separable{i}``
  (a depthwise + 1x1 convolution instead of a full one), ``depth{i}`` (1 or 2 convolutions before the pool),
  ``pool`` (max or average), ``head`` (flatten, a global average pool, or a hidden dense layer of ``hidden``
  units);
- mlp: ``downsample`` (1: the 784 pixels; 2: the image averaged over 2x2 blocks, 196 inputs, an AVERAGE_POOL_2D),
  ``depth`` (1-3) and ``units{i}`` (:data:`MLP_WIDTHS`, without the widths whose first layer alone, even on the
  downsampled image, would not fit the board's flash);
- both: ``dropout`` (0-0.4 by 0.1);
- training: ``epochs`` (1 to ``--max-epochs``, all of them run: the early stopping's patience is the epochs),
  ``lr`` (log-uniform 1e-3 to 1e-2, Adam with cosine decay),
  ``augment`` (random shifts and rotations), ``distill`` (from the teacher, when one is trained);
- ``granularity``: Dense weights per tensor, or per channel where the board's TFLM computes per-channel
  FULLY_CONNECTED right (or the board has no TFLM: the native backend runs both).

:func:`baseline_params` are the shipped ``cnn`` and ``tiny`` architectures in this space: a new study runs
them first, so the front is compared with the hand-designed variants on the same footing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models.zoo import HEADS, MAX_STAGES, POOLS, STAGE_DEPTHS

FAMILIES = ("conv", "mlp")
WIDTHS = (4, 6, 8, 12, 16, 24, 32, 48, 64)
KERNELS = (3, 5)
MLP_WIDTHS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
DOWNSAMPLE = (1, 2)
HIDDEN = (16, 32, 64)
GRANULARITIES = ("per-tensor", "per-channel")
TEMPERATURE = 4.0
ALPHA = 0.1
BASELINE_LR = 3e-3  # the zoo's default (models.zoo.fit), the shipped variants' learning rate


@dataclass(frozen=True)
class Space:
    """The knobs of the space that depend on the run: epochs, the teacher, per-channel Dense."""

    max_epochs: int = 8
    min_epochs: int = 1
    teacher: str | None = None  # a trained variant with a ``logits`` layer to distill from; None: no distillation
    per_channel: bool = False  # the board's TFLM computes per-channel FULLY_CONNECTED right (or has no TFLM)
    families: tuple[str, ...] = FAMILIES
    mlp_widths: tuple[int, ...] = MLP_WIDTHS


def parse_families(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``conv,mlp`` -> the checked tuple (the order of :data:`FAMILIES`).

    Raises:
        EdgeDigitError: an unknown family, or none.
    """
    from ..core.errors import EdgeDigitError

    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names or any(n not in FAMILIES for n in names):
        shown = text if isinstance(text, str) else ",".join(text)
        raise EdgeDigitError(f"--family {shown}: give one or more of {', '.join(FAMILIES)} separated by commas")
    return tuple(f for f in FAMILIES if f in names)


def for_board(board: Any, families: tuple[str, ...] = FAMILIES, **knobs: Any) -> Space:
    """The space for ``board`` (a ``targets.boards.Board``): ``families`` (``--family``) without the conv family
    when a conv net's first activation (28 x 28 x the narrowest width, int8) exceeds its RAM, without the MLP
    widths whose first layer on the downsampled image (196 x width int8 weights) exceeds its flash left by the
    smallest runtime of its neural backends. Such models are pruned before training anyway: this keeps the trials
    for those that may fit.

    Args:
        families: the families asked for (default both).
        knobs: the other :class:`Space` fields (epochs, teacher, per_channel).

    Raises:
        EdgeDigitError: none of ``families`` can fit the board (names the board and why).
    """
    from ..core.errors import EdgeDigitError
    from ..targets.backends import BACKENDS

    neural = [board.runtime[b] for b in board.backends if b in BACKENDS and BACKENDS[b].kind == "neural"]
    room = board.flash_bytes - min((r.flash for r in neural), default=0)
    fits = FAMILIES if 28 * 28 * min(WIDTHS) <= board.ram_bytes else ("mlp",)
    families = tuple(f for f in families if f in fits)
    if not families:
        raise EdgeDigitError(f"--family conv: {board.id} has {board.ram_bytes:,} B of RAM, less than a conv net's "
                             f"first activation (28 x 28 x {min(WIDTHS)} B); search the mlp family there")
    inputs = 28 * 28 // max(DOWNSAMPLE) ** 2
    widths = tuple(w for w in MLP_WIDTHS if inputs * w <= room) or MLP_WIDTHS[:1]
    return Space(families=families, mlp_widths=widths, **knobs)


def suggest(trial: Any, space: Space) -> dict:
    """Draw one spec from ``trial`` (an ``optuna.Trial``; the parameter names are those of the module docstring)."""
    family = trial.suggest_categorical("family", space.families)
    if family == "conv":
        stages = []
        for i in range(1, trial.suggest_int("stages", 1, MAX_STAGES) + 1):
            stages.append({"width": trial.suggest_categorical(f"width{i}", WIDTHS),
                           "kernel": trial.suggest_categorical(f"kernel{i}", KERNELS),
                           "separable": trial.suggest_categorical(f"separable{i}", (False, True)),
                           "depth": trial.suggest_categorical(f"depth{i}", STAGE_DEPTHS)})
        arch: dict[str, Any] = {"family": "conv", "stages": stages, "pool": trial.suggest_categorical("pool", POOLS),
                                "head": trial.suggest_categorical("head", HEADS)}
        if arch["head"] == "dense":
            arch["hidden"] = trial.suggest_categorical("hidden", HIDDEN)
    else:
        downsample = trial.suggest_categorical("downsample", DOWNSAMPLE)
        depth = trial.suggest_int("depth", 1, 3)
        arch = {"family": "mlp", "layers": [trial.suggest_categorical(f"units{i}", space.mlp_widths)
                                            for i in range(1, depth + 1)]}
        if downsample > 1:
            arch["downsample"] = downsample
    arch["dropout"] = round(trial.suggest_float("dropout", 0.0, 0.4, step=0.1), 1)
    low = min(space.min_epochs, space.max_epochs)
    epochs = trial.suggest_int("epochs", low, space.max_epochs)
    training = {"epochs": epochs, "patience": epochs,  # the whole cosine schedule (variants.searched)
                "lr": round(trial.suggest_float("lr", 1e-3, 1e-2, log=True), 6),
                "augment": trial.suggest_categorical("augment", (False, True)),
                "teacher": None}
    if space.teacher is not None and trial.suggest_categorical("distill", (False, True)):
        training.update({"teacher": space.teacher, "temperature": TEMPERATURE, "alpha": ALPHA})
    granularity = trial.suggest_categorical("granularity", GRANULARITIES) if space.per_channel else "per-tensor"
    return {"architecture": arch, "training": training, "granularity": granularity}


def baseline_params(space: Space | None = None) -> list[dict[str, Any]]:
    """The shipped ``cnn`` (width 16, dropout 0.2) and ``tiny`` (width 8) as parameters of this space (none
    when ``space`` has no conv family).

    With ``space``, each also gets the best training the search may give: ``space.max_epochs`` epochs, the
    zoo's learning rate (3e-3), augmentation, and for ``tiny`` distillation from the teacher as its recipe
    does (when the space has one); without, the training knobs are left to the sampler.
    """
    if space is not None and "conv" not in space.families:
        return []

    def conv(width: int, dropout: float, distill: bool) -> dict[str, Any]:
        p: dict[str, Any] = {"family": "conv", "stages": 3, "pool": "max", "head": "flatten", "dropout": dropout,
                             "augment": True}
        for i, w in enumerate((width, 2 * width, 4 * width), start=1):
            p.update({f"width{i}": w, f"kernel{i}": 3, f"separable{i}": False, f"depth{i}": 1})
        if space is not None:
            p.update({"epochs": space.max_epochs, "lr": BASELINE_LR})
            if space.teacher is not None:
                p["distill"] = distill
        return p

    return [conv(16, 0.2, False), conv(8, 0.0, True)]
