"""The backends as objects, and the one policy that picks a model and a backend for a board.

A backend (``tflm``, ``native``, ``linear``) is one :class:`Backend` in :data:`BACKENDS`. For a model
(:class:`ModelSource`) on a board it answers, in this order:

1. :meth:`Backend.problem`: why it cannot run this model there (None when it can): the board does not
   list it, the model is of another kind, or the model uses something the backend lacks (an operator
   missing from the board's TFLM library, per-channel FULLY_CONNECTED where that library computes it
   wrong, an operator or graph the native backend cannot compile). Size is not a problem here;
2. :meth:`Backend.requirement`: the flash and RAM it needs on the board (:class:`Requirement`);
3. :meth:`Backend.generate`: the backend's files for the project's ``src/``.

:func:`judge` asks 1 and 2 of a board's backends, in the board's order of preference, and keeps the first
that fits (:class:`Fit`); :func:`choose` ranks judged models with the one selection policy: highest int8
accuracy, then less flash, then the name. ``edgedigit export`` without ``--variant``, ``edgedigit select``
and the report's recommendation all rank through it.

What costs an interpreter or a plan (TFLM's measured arena, the native memory plan) is computed once per
:class:`ModelSource` and kept on it (``ModelSource.prepared``): the budget check and the generator share
it. Code generation itself (``edgedigit.codegen``) runs no interpreter: the tflm backend measures the arena
and computes the start-up self-check here, in the export stage, and hands both to the generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ModelError

if TYPE_CHECKING:
    from ..codegen.tflm import SelfCheck
    from ..core.graph import Graph
    from ..core.int8 import IoSpec
    from ..core.store import Card
    from .boards import Board

LUT_BYTES = 256  # the input table a digit classifier's runner carries (one int8 per raw pixel value)
# The MLPerf Tiny ids the reference runner knows (its tests_*.yaml), and the reference models' file stems.
MLPERF_IDS = ("ad01", "ic01", "kws01", "vww01")
MLPERF_STEMS = {"ad01_int8": "ad01", "pretrainedResnet_quant": "ic01", "kws_ref_model": "kws01",
                "vww_96_int8": "vww01"}


def mlperf_id_for(stem: str, given: str | None = None) -> str | None:
    """The MLPerf Tiny id a model reports in ``profile%``: ``given``, else derived from the file's stem (the
    reference models' names, or a stem that starts with an id, e.g. ``ad01_int8``); None otherwise.

    Raises:
        ModelError: ``given`` is not an id the MLPerf Tiny runner knows.
    """
    if given is not None:
        if given not in MLPERF_IDS:
            raise ModelError(f"--mlperf-id {given}: not an MLPerf Tiny model id (one of {', '.join(MLPERF_IDS)})")
        return given
    if stem in MLPERF_STEMS:
        return MLPERF_STEMS[stem]
    return next((i for i in MLPERF_IDS if stem.startswith(i)), None)


# ---- the model -------------------------------------------------------------------------------------------

@dataclass
class ModelSource:
    """The model an export embeds: a trained variant's artifact or any int8 .tflite."""

    name: str  # variant name, or the .tflite's file stem
    kind: str  # "neural" or "linear" (core.store.KINDS)
    path: Path
    sha256: str
    source_name: str  # how banners and the lock file name it (relative to the build tree when inside it)
    card: Card | None = None
    graph: Graph | None = None  # neural models
    fixed: Any = None  # the fixed-point LR tables of linear models (pixels, weights, bias, scale)
    # facts the backends computed once for this model (TFLM's measured arena, the native plan)
    prepared: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    mlperf_id: str | None = None  # what profile% reports (an MLPerf Tiny id); None: the name

    @property
    def io(self) -> IoSpec:
        """The model's I/O contract (``core.int8``): a graph's, or the linear model's (784 raw pixels in,
        int32 class scores out, reported as their softmax).

        Raises:
            ModelError: a graph the firmware cannot feed or read (not int8/uint8 in, int8 out).
        """
        from ..core.int8 import IMAGE_BYTES, INPUT_SHAPE, IoSpec, io_spec

        if self.graph is not None:
            return self.once("io", lambda: io_spec(self.graph))
        return IoSpec(IMAGE_BYTES, "pixels", INPUT_SHAPE, 1.0, 0, self.num_classes, float(self.fixed.scale), 0,
                      "softmax")

    @property
    def accuracy(self) -> float | None:
        """The card's int8 accuracy (None for a bare .tflite or a card without one)."""
        return self.card.int8_accuracy if self.card is not None else None

    @property
    def num_classes(self) -> int:
        """Raw outputs per inference: the graph's output size, or the LR's number of weight rows."""
        import numpy as np

        if self.graph is not None:
            return int(np.prod(self.graph.output.shape))
        return int(np.asarray(self.fixed.weights).shape[0])

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, the kept value afterwards."""
        if key not in self.prepared:
            self.prepared[key] = compute()
        return self.prepared[key]


# ---- what it needs ---------------------------------------------------------------------------------------

def _kb(n: int) -> str:
    return f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} B"


@dataclass
class Requirement:
    """What a model + backend needs on a board, against what the board has."""

    board: Board
    backend: str
    model_name: str
    model_flash: int  # model data in flash: .tflite, native weights, or LR tables (+ LUT / self-check)
    arena: int  # activation RAM: TFLM arena, native plan; 0 for linear
    runtime_flash: int
    runtime_ram: int
    detail: dict[str, Any] = field(default_factory=dict)
    model_ram: int = 0  # model tables the toolchain copies to SRAM (AVR without PROGMEM)
    io_ram: int = 0  # the model's I/O buffers: the loaded input (and the linear runner's class scores)

    @property
    def flash(self) -> int:
        return self.model_flash + self.runtime_flash

    @property
    def ram(self) -> int:
        return self.arena + self.io_ram + self.model_ram + self.runtime_ram

    @property
    def fits(self) -> bool:
        return self.flash <= self.board.flash_bytes and self.ram <= self.board.ram_bytes

    def shortfall(self) -> str:
        """The numbers that do not fit, e.g. ``107,752 B model + ~60 KB tflm runtime = ... > uno's ... flash``."""
        parts = []
        if self.flash > self.board.flash_bytes:
            parts.append(f"{self.model_flash:,} B model + ~{_kb(self.runtime_flash)} {self.backend} runtime = "
                         f"{self.flash:,} B > {self.board.id}'s {self.board.flash_bytes:,} B flash")
        if self.ram > self.board.ram_bytes:
            in_ram = f" + {self.model_ram:,} B model tables copied to RAM" if self.model_ram else ""
            io = f" + {self.io_ram:,} B I/O buffers" if self.io_ram else ""
            parts.append(f"{self.arena:,} B arena{io}{in_ram} + ~{_kb(self.runtime_ram)} {self.backend} runtime = "
                         f"{self.ram:,} B > {self.board.id}'s {self.board.ram_bytes:,} B RAM")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "model_flash": self.model_flash, "runtime_flash": self.runtime_flash,
                "flash": self.flash, "flash_available": self.board.flash_bytes, "arena": self.arena,
                "io_ram": self.io_ram, "model_ram": self.model_ram, "runtime_ram": self.runtime_ram, "ram": self.ram,
                "ram_available": self.board.ram_bytes,
                "runtime_basis": self.board.runtime[self.backend].basis, **self.detail}


# ---- the backends ----------------------------------------------------------------------------------------

class Backend:
    """One way to run a model on a board. Subclasses set ``name`` and ``kind`` and implement the rest."""

    name: str = ""
    kind: str = ""  # the kind of model it runs: "neural" or "linear"

    def problem(self, board: Board, src: ModelSource) -> str | None:
        """Why this backend cannot run ``src`` on ``board`` (None when it can). Size is not checked here.

        Raises:
            ModelError: the model itself is not usable (e.g. not full int8): no backend could run it.
        """
        if self.name not in board.backends:
            return board.why_not(self.name)
        if self.kind != src.kind:
            return f"backend {self.name} runs {self.kind} models and {src.name} is {src.kind}"
        return self._model_problem(board, src)

    def _model_problem(self, board: Board, src: ModelSource) -> str | None:
        return None

    def recorded_arena(self, src: ModelSource) -> int | None:
        """The activation arena the model's card recorded at quantization, if this backend uses one."""
        return None

    def requirement(self, board: Board, src: ModelSource, measured_arena: int | None = None) -> Requirement:
        """Flash and RAM ``src`` needs on ``board`` with this backend (which must be able to run it).

        Args:
            measured_arena: the arena already measured for this model (e.g. recorded on its card); default:
                measured now, once per model.
        """
        raise NotImplementedError

    def generate(self, board: Board, src: ModelSource, req: Requirement) -> dict[str, str | bytes]:
        """The backend's files for ``src/`` (file name -> content)."""
        raise NotImplementedError

    def project_files(self, board: Board, src: ModelSource, req: Requirement,
                      kernels: str | None = None) -> dict[str, str | bytes]:
        """Files the backend adds at the project root (name -> content); none by default."""
        return {}

    def lock(self, board: Board, kernels: str | None = None) -> dict[str, Any] | None:
        """What the lock file records of the library this backend pins on ``board`` (None: nothing)."""
        return None

    def model_data(self, src: ModelSource) -> list[bytes]:
        """The model data the firmware checksums at boot, in its order (``m-ed-model-crc32`` is their CRC-32)."""
        raise NotImplementedError

    def model_crc32(self, src: ModelSource) -> int:
        """The CRC-32 a firmware of this backend reports for ``src`` when its model data is as exported."""
        from ..codegen.runner import crc32

        return src.once(f"{self.name}.crc32", lambda: crc32(self.model_data(src)))


class TflmBackend(Backend):
    """TensorFlow Lite Micro: the .tflite embedded as is, the board's pinned TFLM library runs it.

    PlatformIO boards get the library from their ``lib_deps``; boards built with make (``qemu-m4``, ``host``)
    compile it from a source tree once into the build cache (``targets/tflm_lib.py``): the project gets a
    ``tflm.mk`` with the recipe, and the tree's own facts (its operators, per-channel FULLY_CONNECTED)
    decide what it can run.
    """

    name = "tflm"
    kind = "neural"

    def library(self, board: Board, kernels: str | None = None) -> Any:
        """The source-built library of a make board (``tflm_lib.Library``), None for a PlatformIO board.

        Raises:
            BoardError: no source tree is found, or ``kernels`` cannot be built from it for this board.
        """
        from . import tflm_lib

        if board.tflm is None or not board.tflm.tree:
            return None
        return tflm_lib.for_board(board, kernels)

    def _facts(self, board: Board, src: ModelSource) -> tuple[str, str, frozenset[str], bool]:
        """(library name, version, builtin ops it provides among the model's, per-channel FC) on ``board``."""
        lib = board.tflm
        built = self.library(board)
        if built is None:
            return lib.library, lib.version, lib.ops, lib.per_channel_fully_connected
        tree = built.tree
        ops = frozenset(op for op in src.graph.op_names() if tree.provides(op))
        return tree.name, tree.commit.split("\n")[0] or "no COMMIT file", ops, tree.per_channel_fully_connected

    def _model_problem(self, board: Board, src: ModelSource) -> str | None:
        from ..codegen import tflm
        from ..core.errors import BoardError

        try:
            library, version, ops, per_channel = self._facts(board, src)
        except BoardError as e:
            return str(e)
        try:
            tflm.check_ops(src.graph, ops, f"{board.id}'s TFLM library ({library})")
            tflm.model_facts(src.graph)
            self.measured_arena(src)  # a model TFLM cannot allocate is this backend's problem, not the model's
        except ModelError as e:
            return str(e)
        if tflm.per_channel_fully_connected(src.graph) and not per_channel:
            fix = (f"edgedigit quantize {src.name} --granularity per-tensor" if src.card is not None
                   else "re-convert with converter._experimental_disable_per_channel_quantization_for_dense_layers = True")
            return (f"{src.name}'s FULLY_CONNECTED weights are quantized per channel and {board.id}'s TFLM library "
                    f"({library}, {version}) computes such layers wrong without an error; re-quantize per "
                    f"tensor ({fix}) or use --backend native")
        return None

    def recorded_arena(self, src: ModelSource) -> int | None:
        return src.card.tflm_arena_bytes if src.card is not None else None

    def measured_arena(self, src: ModelSource) -> int:
        """The arena host TFLM allocates for ``src`` (one interpreter, once per model)."""
        from ..runtimes import tflm_arena_bytes

        return src.once("tflm.arena", lambda: tflm_arena_bytes(src.path))

    def requirement(self, board: Board, src: ModelSource, measured_arena: int | None = None) -> Requirement:
        from ..codegen import tflm

        spec = tflm.model_facts(src.graph)  # a float or dynamic-range model: say so, not "TFLM cannot load it"
        if measured_arena is None:
            measured_arena = self.measured_arena(src)
        rt = board.runtime[self.name]
        checks = len(tflm.self_check_inputs(spec))
        # input LUT (digit classifiers) + start-up self-check vectors
        extra = (LUT_BYTES if spec.image else 0) + checks * (spec.input_bytes + spec.outputs)
        return Requirement(board, self.name, src.name, src.graph.size_bytes + extra, tflm.arena_bytes(measured_arena),
                           rt.flash, rt.ram, {"tflite_bytes": src.graph.size_bytes, "tables_bytes": extra,
                                              "arena_measured": measured_arena,
                                              "arena_margin": tflm.arena_margin(measured_arena)},
                           io_ram=spec.input_bytes)

    def self_check(self, src: ModelSource) -> SelfCheck:
        """The start-up check vectors: ``codegen.tflm.self_check_images()`` and host TFLM's int8 outputs.

        They are computed by TFLM with an arena of exactly the measured size, so the figure the firmware's
        arena is sized from is also shown to be enough (the measuring interpreter is the only other one).
        """
        import numpy as np

        from ..codegen import tflm
        from ..runtimes.tflm import TFLMModel

        spec = tflm.model_facts(src.graph)
        rows = tflm.self_check_inputs(spec)
        out = np.asarray(TFLMModel(src.path, arena=self.measured_arena(src)).run(tflm.device_input(src.graph, spec,
                                                                                                   rows)))
        return tflm.SelfCheck(rows, out.reshape(len(rows), spec.outputs).astype(np.int8))

    def generate(self, board: Board, src: ModelSource, req: Requirement) -> dict[str, str | bytes]:
        from ..codegen import tflm

        tflm.model_facts(src.graph)  # refuse a model the firmware cannot feed before running it on the host
        library, _, ops, _ = self._facts(board, src)
        return tflm.generate(src.graph, variant=src.name, source_name=src.source_name,
                             measured_arena=req.detail["arena_measured"], self_check=self.self_check(src),
                             available_ops=ops, library=library, include=board.tflm.include,
                             model_id=src.mlperf_id)

    def model_data(self, src: ModelSource) -> list[bytes]:
        from ..codegen import tflm

        return tflm.model_data(src.graph)

    def project_files(self, board: Board, src: ModelSource, req: Requirement,
                      kernels: str | None = None) -> dict[str, str | bytes]:
        """``tflm.mk`` for a make board: the recipe that builds the library (the interpreter and this model's
        kernels) from objects compiled once into the build cache."""
        from . import tflm_lib

        built = self.library(board, kernels)
        return {} if built is None else {"tflm.mk": tflm_lib.makefile(built, frozenset(src.graph.op_names()))}

    def lock(self, board: Board, kernels: str | None = None) -> dict[str, Any] | None:
        if board.tflm is None:
            return None
        built = self.library(board, kernels)
        if built is not None:
            d = built.describe()
            return {**{k: d[k] for k in ("name", "layout", "commit", "kernels", "toolchain", "compiler", "key")},
                    "per_channel_fully_connected": built.tree.per_channel_fully_connected}
        t = board.as_dict()["tflm"]
        return {k: t[k] for k in ("library", "version", "date", "source", "per_channel_fully_connected")}


class NativeBackend(Backend):
    """edgedigit's interpreter-free C: the graph lowered to kernel calls over a statically planned arena."""

    name = "native"
    kind = "neural"

    def program(self, src: ModelSource, board: Board | None = None) -> Any:
        """``src`` checked, lowered and planned by the native backend (``codegen.native.prepare``), once per model
        (and per input layout: a board whose ``[runtime.native]`` sets ``input_in_arena`` holds a digit image in
        the arena's input bytes, which then stay alive for the whole run).

        Raises:
            UnsupportedOpError: an operator the backend lacks. ModelError: a graph it cannot compile.
        """
        from ..codegen import native

        in_place = board is not None and board.runtime[self.name].input_in_arena
        return src.once(f"native.program.{int(in_place)}",
                        lambda: native.prepare(src.graph, input_in_place=in_place))

    def plan(self, src: ModelSource) -> Any:
        """The native memory plan of ``src`` (see :meth:`program`)."""
        return self.program(src).plan

    def _model_problem(self, board: Board, src: ModelSource) -> str | None:
        try:
            self.program(src, board)
        except ModelError as e:  # an op, a dtype or a shape the native backend lacks: another backend may run it
            return str(e)
        return None

    def requirement(self, board: Board, src: ModelSource, measured_arena: int | None = None) -> Requirement:
        rt = board.runtime[self.name]
        program = self.program(src, board)
        spec = src.io
        weights, arena = program.weights_bytes, program.arena_bytes
        # every constant array the generated C holds (weights, biases, per-channel multipliers and shifts)
        # and the input table of a digit classifier: the model data the boot CRC covers
        tables = sum(len(b) for b in self.model_data(src))
        # Where const tables are copied to SRAM, they need RAM as well as flash: all of them (weights_in_ram),
        # or (const_in_ram, AVR) those the kernels read as plain memory, not through EDGEDIGIT_ROM
        in_ram = tables if rt.weights_in_ram else program.ram_tables_bytes if rt.const_in_ram else 0
        # the runtime's code covers the board's listed operators; any other adds the other kernels' code
        others = sorted(set(src.graph.op_names()) - set(rt.ops)) if rt.ops else []
        calls = sum(1 for s in program.steps if s.kernel)  # RESHAPE emits no call
        runtime_flash = rt.flash + (rt.other_ops_flash if others else 0) + max(0, calls - rt.calls) * rt.flash_per_call
        # a digit image held in the arena's input bytes (input_in_place) needs no buffer of its own
        return Requirement(board, self.name, src.name, tables, arena, runtime_flash, rt.ram,
                           {"weights_bytes": weights, "input_in_arena": program.input_in_place,
                            "ops_beyond_runtime": others, "kernel_calls": calls}, model_ram=in_ram,
                           io_ram=0 if program.input_in_place else spec.input_bytes)

    def generate(self, board: Board, src: ModelSource, req: Requirement) -> dict[str, str | bytes]:
        from ..codegen import native

        return native.generate(src.graph, variant=src.name, source_name=src.source_name,
                               program=self.program(src, board), model_id=src.mlperf_id)

    def model_data(self, src: ModelSource) -> list[bytes]:
        from ..codegen import native

        return native.model_data(self.program(src))


class LinearBackend(Backend):
    """The fixed-point logistic regression (rfe-lr): a table of pixel indices, int8 weights, int32 biases."""

    name = "linear"
    kind = "linear"

    def requirement(self, board: Board, src: ModelSource, measured_arena: int | None = None) -> Requirement:
        from ..codegen import linear

        rt = board.runtime[self.name]
        spec = src.io  # the loaded image and the runner's int32 class scores
        return Requirement(board, self.name, src.name, linear.tables_bytes(src.fixed), 0, rt.flash, rt.ram,
                           io_ram=spec.input_bytes + 4 * spec.outputs)

    def generate(self, board: Board, src: ModelSource, req: Requirement) -> dict[str, str | bytes]:
        from ..codegen import linear

        return linear.generate(src.fixed, variant=src.name, source_name=src.source_name, sha256=src.sha256,
                               model_id=src.mlperf_id)

    def model_data(self, src: ModelSource) -> list[bytes]:
        from ..codegen import linear

        return linear.model_data(src.fixed)


BACKENDS: dict[str, Backend] = {b.name: b for b in (TflmBackend(), NativeBackend(), LinearBackend())}


def tflm_library(board: Board, kernels: str | None = None) -> Any:
    """The TFLM library ``board`` compiles from a source tree (``tflm_lib.Library``); None for a board that
    gets TFLM from its PlatformIO ``lib_deps`` or has none.

    Raises:
        BoardError: the board builds from a tree but none is found, or ``kernels`` cannot be built from it.
    """
    backend = BACKENDS["tflm"]
    assert isinstance(backend, TflmBackend)
    return backend.library(board, kernels)


def problem(board: Board, src: ModelSource, backend: str) -> str | None:
    """Why ``backend`` (any name, even an unknown one) cannot run ``src`` on ``board``; None when it can."""
    if backend not in BACKENDS:
        return board.why_not(backend)
    return BACKENDS[backend].problem(board, src)


def default_backend(board: Board, kind: str) -> str | None:
    """The board's first backend that runs models of ``kind`` (before a model exists: no op check)."""
    return next((b for b in board.backends if BACKENDS[b].kind == kind), None)


# ---- the selection policy --------------------------------------------------------------------------------

@dataclass
class Fit:
    """One model judged against a board: the first backend (board order) that runs it and fits, or why not."""

    name: str
    accuracy: float | None  # int8 accuracy (the card's)
    src: ModelSource | None = None
    card: Card | None = None
    requirement: Requirement | None = None  # the first backend that runs the model and fits
    problems: dict[str, str] = field(default_factory=dict)  # backend -> why it cannot run the model
    too_large: list[Requirement] = field(default_factory=list)  # backends that run it but do not fit, in order
    reasons: list[str] = field(default_factory=list)  # why it cannot be chosen (empty: it can)

    @property
    def eligible(self) -> bool:
        return not self.reasons


def judge(board: Board, src: ModelSource, *, recorded: bool = False) -> Fit:
    """Ask every backend of ``board`` whether it runs ``src``; keep the first (board order) that fits.

    Args:
        recorded: use the arena the model's card recorded at quantization where it has one, instead of
            measuring it (``edgedigit select`` and the report judge every variant on every board).

    Returns:
        The fit; ``reasons`` says why it cannot be chosen (no backend runs it, or it is too large).

    Raises:
        ModelError: the model itself is not usable (e.g. not full int8).
    """
    fit = Fit(src.name, src.accuracy, src, src.card)
    _ = src.io  # a model no firmware can feed (float I/O, two inputs) is the model's problem: raise it
    for name in board.backends:
        why = problem(board, src, name)
        if why is not None:
            fit.problems[name] = why
    for backend in [BACKENDS[b] for b in board.backends if b not in fit.problems]:
        try:
            req = backend.requirement(board, src, backend.recorded_arena(src) if recorded else None)
        except ModelError as e:  # this backend cannot size it: the next one may run it
            fit.problems[backend.name] = str(e)
            continue
        if req.fits:
            fit.requirement = req
            return fit
        fit.too_large.append(req)
    if not fit.too_large:
        fit.reasons.append("no backend of the board runs it (" + "; ".join(kind_problems(fit, src)) + ")")
        return fit
    fit.reasons.append("too large: " + "; ".join(r.shortfall() for r in fit.too_large))
    return fit


def kind_problems(fit: Fit, src: ModelSource) -> list[str]:
    """The problems of the backends that run ``src``'s kind (the others' "runs linear models" is noise), or
    every problem when no backend runs its kind."""
    same = [why for name, why in fit.problems.items() if name in BACKENDS and BACKENDS[name].kind == src.kind]
    return same or list(fit.problems.values())


def rank(fit: Fit) -> tuple[float, float, str]:
    """The one tie-break: highest int8 accuracy (none counts lowest), then less flash, then the name."""
    flash = fit.requirement.flash if fit.requirement is not None else math.inf
    return (-fit.accuracy if fit.accuracy is not None else math.inf, flash, fit.name)


def choose(fits: Iterable[Fit]) -> list[Fit]:
    """The eligible fits, best first (see :func:`rank`); empty when none is eligible."""
    return sorted((f for f in fits if f.eligible and f.requirement is not None), key=rank)
