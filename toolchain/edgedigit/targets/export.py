"""The export stage: board + model + backend -> a complete firmware project in ``build/firmware/``.

Steps (COMMON contract 6): resolve the board, the model (a trained variant or any int8 .tflite) and the
backend; check the flash/RAM budget BEFORE rendering anything; render every file in memory; write them
into a staged folder that replaces the project in one rename; record everything that went into it in
``edgedigit.lock.json``. Nothing depends on the clock or the output path, so the same inputs give the
same bytes.
"""

from __future__ import annotations

import hashlib
import json
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..core.errors import EdgeDigitError, ModelError, ModelTooLargeError, NotTrainedError, UnsupportedOpError
from ..core.fsutil import sha256_file, staged_dir, write_atomic, write_json
from ..core.paths import build_dir, firmware_dir, model_dir, models_dir, templates_dir
from .boards import Board, load_board

ARTIFACTS = {"neural": "model_int8.tflite", "linear": "model_fixed.npz"}
LOCK_FILE = "edgedigit.lock.json"
_BACKEND_KIND = {"tflm": "neural", "native": "neural", "linear": "linear"}


@dataclass
class ModelSource:
    """The model an export embeds."""

    name: str  # variant name, or the .tflite's file stem
    kind: str  # "neural" or "linear"
    path: Path
    sha256: str
    source_name: str  # how banners and the lock file name it (relative to the build tree when inside it)
    card: dict | None = None
    graph: Any = None  # edgedigit.graph.Graph for neural models
    fixed: Any = None  # the fixed-point LR tables for linear models

    @property
    def accuracy(self) -> float | None:
        return (self.card or {}).get("int8_accuracy")


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

    @property
    def flash(self) -> int:
        return self.model_flash + self.runtime_flash

    @property
    def ram(self) -> int:
        return self.arena + self.model_ram + self.runtime_ram

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
            parts.append(f"{self.arena:,} B arena{in_ram} + ~{_kb(self.runtime_ram)} {self.backend} runtime = "
                         f"{self.ram:,} B > {self.board.id}'s {self.board.ram_bytes:,} B RAM")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "model_flash": self.model_flash, "runtime_flash": self.runtime_flash,
                "flash": self.flash, "flash_available": self.board.flash_bytes, "arena": self.arena,
                "model_ram": self.model_ram, "runtime_ram": self.runtime_ram, "ram": self.ram,
                "ram_available": self.board.ram_bytes,
                "runtime_basis": self.board.runtime[self.backend].basis, **self.detail}


@dataclass
class ExportResult:
    path: Path
    board: Board
    model: ModelSource
    backend: str
    requirement: Requirement
    files: dict[str, str]  # relative path -> sha256
    lock: dict[str, Any]


def _kb(n: int) -> str:
    return f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} B"


# ---- models ----------------------------------------------------------------------------------------------

def _relative_name(path: Path) -> str:
    try:
        return path.resolve().relative_to(build_dir().resolve()).as_posix()
    except ValueError:
        return path.name


def trained_variants() -> list[str]:
    """Variants with a card in ``build/models/``, sorted."""
    root = models_dir()
    return sorted(p.parent.name for p in root.glob("*/card.json")) if root.is_dir() else []


def load_fixed_lr(path: Path) -> Any:
    """The rfe-lr fixed-point tables from ``model_fixed.npz`` (COMMON contract 4).

    Raises:
        ModelError: the file is missing, unreadable or lacks one of pixels, weights, bias, scale.
    """
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    from ..codegen import linear

    try:
        with np.load(path) as z:
            fixed = types.SimpleNamespace(**{k: np.asarray(z[k]) for k in ("pixels", "weights", "bias", "scale")})
    except KeyError as e:
        raise ModelError(f"{path}: missing array {e} (needs pixels, weights, bias, scale)") from None
    except (OSError, ValueError, EOFError) as e:  # EOFError: an empty file (click would print "Aborted.")
        raise ModelError(f"{path}: not a readable .npz ({e or 'the file is empty'})") from None
    try:
        linear.tables(fixed)
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
    return fixed


def resolve_model(variant: str | None = None, model: Path | None = None) -> ModelSource:
    """The model to export: a trained variant's int8 artifact, or any int8 .tflite given by path.

    Raises:
        NotTrainedError: the variant has no card or is not quantized yet.
        ModelError: the file is missing or not a usable model.
    """
    from ..core.graph import load_graph

    if (variant is None) == (model is None):
        raise EdgeDigitError("give exactly one of --variant or --model")
    if model is not None:
        path = Path(model)
        if path.suffix != ".tflite":
            raise ModelError(f"{path}: --model takes an int8 .tflite file")
        graph = load_graph(path)
        return ModelSource(path.stem, "neural", path, graph.sha256, _relative_name(path), None, graph)
    from ..core.store import read_card

    card = read_card(variant)
    kind = card.get("kind", "neural")
    if kind not in ARTIFACTS:
        raise ModelError(f"{model_dir(variant) / 'card.json'}: unknown kind {kind!r} (neural or linear)")
    path = model_dir(variant) / ARTIFACTS[kind]
    if not path.is_file():
        raise NotTrainedError(f"variant '{variant}' is not quantized ({path} missing): run `edgedigit quantize {variant}` first")
    if kind == "neural":
        graph = load_graph(path)
        return ModelSource(variant, kind, path, graph.sha256, _relative_name(path), card, graph)
    return ModelSource(variant, kind, path, sha256_file(path), _relative_name(path), card, None, load_fixed_lr(path))


# ---- backends and budgets --------------------------------------------------------------------------------

def backend_problem(board: Board, src: ModelSource, backend: str) -> str | None:
    """Why ``backend`` cannot run ``src`` on ``board`` (None when it can). Size is not checked here."""
    from ..codegen import tflm

    if backend not in board.backends:
        return board.why_not(backend)
    if _BACKEND_KIND[backend] != src.kind:
        return f"backend {backend} runs {_BACKEND_KIND[backend]} models and {src.name} is {src.kind}"
    if backend == "tflm":
        lib = board.tflm
        try:
            tflm.check_ops(src.graph, lib.ops, f"{board.id}'s TFLM library ({lib.library})")
        except UnsupportedOpError as e:
            return str(e)
        if tflm.per_channel_fully_connected(src.graph) and not lib.per_channel_fully_connected:
            fix = (f"edgedigit quantize {src.name} --granularity per-tensor" if src.card is not None
                   else "re-convert with converter._experimental_disable_per_channel_quantization_for_dense_layers = True")
            return (f"{src.name}'s FULLY_CONNECTED weights are quantized per channel and {board.id}'s TFLM library "
                    f"({lib.library}, {lib.version}) computes such layers wrong without an error; re-quantize per "
                    f"tensor ({fix}) or use --backend native")
    return None


def _native_weights_bytes(graph: Any) -> int:
    return int(sum(t.nbytes for t in graph.tensors if t.data is not None))


def requirement(board: Board, src: ModelSource, backend: str, measured_arena: int | None = None) -> Requirement:
    """Flash and RAM that ``src`` on ``backend`` needs on ``board`` (the backend must be usable)."""
    rt = board.runtime[backend]
    if backend == "tflm":
        from ..codegen import tflm

        if measured_arena is None:
            from ..runtimes import tflm_arena_bytes

            tflm.model_facts(src.graph)  # a float or dynamic-range model: say so, not "TFLM cannot load it"

            measured_arena = tflm_arena_bytes(src.path)
        classes = int(np.prod(src.graph.output.shape))
        extra = 256 + 3 * (784 + classes)  # input LUT + start-up self-check vectors
        return Requirement(board, backend, src.name, src.graph.size_bytes + extra, tflm.arena_bytes(measured_arena),
                           rt.flash, rt.ram, {"tflite_bytes": src.graph.size_bytes, "tables_bytes": extra,
                                              "arena_measured": measured_arena,
                                              "arena_margin": tflm.arena_margin(measured_arena)})
    if backend == "native":
        from ..codegen import native

        weights = _native_weights_bytes(src.graph)
        arena = native.plan(src.graph).arena_bytes
        # Where const tables are copied to SRAM (AVR without PROGMEM), they need RAM as well as flash.
        return Requirement(board, backend, src.name, weights + 256, arena, rt.flash, rt.ram,
                           {"weights_bytes": weights}, model_ram=weights + 256 if rt.weights_in_ram else 0)
    from ..codegen import linear

    return Requirement(board, backend, src.name, linear.tables_bytes(src.fixed), 0, rt.flash, rt.ram)


def usable_backends(board: Board, src: ModelSource) -> list[str]:
    """The board's backends that can run ``src``, in the board's order of preference."""
    return [b for b in board.backends if backend_problem(board, src, b) is None]


def fitting_variants(board: Board, exclude: str | None = None) -> list[tuple[str, str]]:
    """Trained variants that fit ``board`` with some backend: (variant, first fitting backend)."""
    out = []
    for name in trained_variants():
        if name == exclude:
            continue
        try:
            src = resolve_model(variant=name)
            for backend in usable_backends(board, src):
                if requirement(board, src, backend).fits:
                    out.append((name, backend))
                    break
        except EdgeDigitError:
            continue  # an untrained or broken variant simply does not fit
    return out


def _fits_clause(board: Board, exclude: str | None) -> str:
    fits = [name for name, _ in fitting_variants(board, exclude)]
    return f"fits: {', '.join(fits)}" if fits else "no trained variant fits"


def choose(board: Board, src: ModelSource, backend: str | None = None) -> Requirement:
    """Pick the backend (explicit or the board's first usable one) and check the budget.

    Raises:
        UnsupportedOpError / BoardError: the backend cannot run this model here (why, and how to fix).
        ModelTooLargeError: it does not fit; the numbers and the variants that would fit are named.
    """
    if backend is not None:
        problem = backend_problem(board, src, backend)
        if problem is not None:
            raise UnsupportedOpError(problem)
        candidates = [backend]
    else:
        candidates = usable_backends(board, src)
        if not candidates:
            reasons = "; ".join(backend_problem(board, src, b) or "" for b in board.backends)
            raise UnsupportedOpError(f"no backend of {board.id} can run {src.name}: {reasons}")
    reqs = [requirement(board, src, b) for b in candidates]
    for req in reqs:
        if req.fits:
            return req
    worst = reqs[0]
    raise ModelTooLargeError(f"{src.name} ({worst.backend}): {worst.shortfall()}; {_fits_clause(board, src.name)}")


def default_variant(board: Board) -> str:
    """The most accurate trained variant (card ``int8_accuracy``) that fits ``board``.

    Raises:
        NotTrainedError: nothing is trained yet.
        ModelTooLargeError: nothing trained fits.
    """
    names = trained_variants()
    if not names:
        raise NotTrainedError(f"no trained variants in {models_dir()}: run `edgedigit train` and `edgedigit quantize` first")
    fitting = [name for name, _ in fitting_variants(board)]
    if not fitting:
        raise ModelTooLargeError(f"none of the trained variants ({', '.join(names)}) fits {board.id}'s "
                                 f"{board.flash_bytes:,} B flash / {board.ram_bytes:,} B RAM; train a smaller one "
                                 f"(e.g. rfe-lr) or pick a bigger board")

    def accuracy(name: str) -> float:
        from ..core.store import read_card

        acc = read_card(name).get("int8_accuracy")
        return float(acc) if acc is not None else -1.0

    return max(fitting, key=lambda n: (accuracy(n), n))


# ---- rendering -------------------------------------------------------------------------------------------

def _template_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _render_folder(folder: Path, ctx: dict[str, Any]) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> text): ``*.j2`` rendered without the suffix, others copied."""
    from ..codegen.render import render

    out = {}
    for p in _template_files(folder):
        rel = p.relative_to(folder).as_posix()
        if rel.endswith(".j2"):
            out[rel[:-3]] = render(p.relative_to(templates_dir()).as_posix(), **ctx)
        else:
            out[rel] = p.read_text()
    return out


def _backend_sources(board: Board, src: ModelSource, req: Requirement) -> dict[str, str | bytes]:
    if req.backend == "tflm":
        from ..codegen import tflm

        return tflm.generate(src.graph, variant=src.name, source_name=src.source_name,
                             measured_arena=req.detail["arena_measured"], available_ops=board.tflm.ops,
                             library=board.tflm.library, include=board.tflm.include)
    if req.backend == "native":
        from ..codegen import native

        return native.generate(src.graph, variant=src.name, source_name=src.source_name)
    from ..codegen import linear

    return linear.generate(src.fixed, variant=src.name, source_name=src.source_name, sha256=src.sha256)


def _merge(into: dict[str, str | bytes], new: dict[str, str | bytes], where: str) -> None:
    for name, content in new.items():
        if name in into:
            raise EdgeDigitError(f"export: two sources both provide {where}{name}")
        into[name] = content


def render_project(board: Board, src: ModelSource, req: Requirement) -> tuple[dict[str, str | bytes], dict[str, Any]]:
    """All files of the project (relative path -> content) and the lock record, rendered in memory."""
    from ..codegen.render import banner

    platform_dir = templates_dir() / "platform" / board.platform
    if not platform_dir.is_dir():
        raise EdgeDigitError(f"{board.path}: platform folder {platform_dir} does not exist")
    src_files: dict[str, str | bytes] = {}
    _merge(src_files, _render_folder(templates_dir() / "runtime", {}), "src/")
    _merge(src_files, _backend_sources(board, src, req), "src/")
    model_info = {
        "variant": src.name, "backend": req.backend, "kind": src.kind, "sha256": src.sha256,
        "source": src.source_name, "num_classes": _num_classes(src), "arena_bytes": req.arena,
        "flash_bytes": req.flash, "ram_bytes": req.ram, "accuracy": src.accuracy,
    }
    ctx = {
        "board": board.as_dict(), "model": model_info, "budget": req.as_dict(),
        "banner_c": banner(src.source_name, src.sha256, "c"), "banner_hash": banner(src.source_name, src.sha256, "hash"),
        "banner_ini": banner(src.source_name, src.sha256, "ini"), "banner_md": banner(src.source_name, src.sha256, "md"),
        "edgedigit_version": __version__,
    }
    platform_src = platform_dir / "src"
    # sources: every file in src/, known before the platform's own templates render (they may list them)
    platform_names = [p.relative_to(platform_src).as_posix().removesuffix(".j2") for p in _template_files(platform_src)] \
        if platform_src.is_dir() else []
    ctx["sources"] = sorted([*src_files, *platform_names])
    if platform_src.is_dir():
        _merge(src_files, _render_folder(platform_src, ctx), "src/")
    files: dict[str, str | bytes] = {f"src/{k}": v for k, v in src_files.items()}
    if (platform_dir / "root").is_dir():
        _merge(files, _render_folder(platform_dir / "root", ctx), "")
    project = {}
    if board.build == "platformio":
        project["platformio.ini"] = _render_one("project/platformio.ini.j2", ctx)
    project["README.md"] = _render_one("project/README.md.j2", ctx)
    _merge(files, project, "")
    lock = _lock(board, src, req, files)
    return files, lock


def _render_one(template: str, ctx: dict[str, Any]) -> str:
    from ..codegen.render import render

    return render(template, **ctx)


def _num_classes(src: ModelSource) -> int:
    if src.kind == "neural":
        return int(np.prod(src.graph.output.shape))
    return int(np.asarray(src.fixed.weights).shape[0])


def _sha(content: str | bytes) -> str:
    return hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()


def _lock(board: Board, src: ModelSource, req: Requirement, files: dict[str, str | bytes]) -> dict[str, Any]:
    from ..core.store import versions

    card = src.card or {}
    lock = {
        "edgedigit": __version__,
        "board": {"id": board.id, "name": board.name, "file_sha256": sha256_file(board.path),
                  "platformio": board.as_dict()["platformio"], "tflm": _tflm_lock(board, req.backend),
                  "counter": board.as_dict()["counter"]},
        "model": {"name": src.name, "kind": src.kind, "source": src.source_name, "sha256": src.sha256,
                  "card": {k: card.get(k) for k in ("variant", "seed", "dataset", "quantization", "int8_accuracy",
                                                    "size_bytes")} if src.card is not None else None},
        "backend": req.backend,
        "budget": req.as_dict(),
        "versions": versions(),
        "files": {name: _sha(content) for name, content in sorted(files.items())},
    }
    return json.loads(json.dumps(lock, default=_plain))


def _tflm_lock(board: Board, backend: str) -> dict[str, Any] | None:
    if backend != "tflm" or board.tflm is None:
        return None
    t = board.as_dict()["tflm"]
    return {k: t[k] for k in ("library", "version", "date", "source", "per_channel_fully_connected")}


def _plain(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _make_readable(folder: Path) -> None:
    """Temporary files and folders are private (0600/0700); a project is ordinary source: 0644/0755."""
    folder.chmod(0o755)
    for p in folder.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


def project_dir(board: Board, name: str, backend: str) -> Path:
    """``build/firmware/<board>/<variant>-<backend>/``."""
    return firmware_dir() / board.id / f"{name}-{backend}"


def export(board: str, variant: str | None = None, model: Path | None = None, backend: str | None = None,
           out: Path | None = None) -> ExportResult:
    """Export a complete firmware project.

    Args:
        board: board id or alias.
        variant: a trained variant; default (with ``model`` None): the most accurate one that fits.
        model: any int8 .tflite instead of a variant.
        backend: ``tflm``, ``native`` or ``linear``; default: the board's first backend that can run it.
        out: the project folder; default ``build/firmware/<board>/<variant>-<backend>/``.

    Returns:
        Where it went, what went in, and the lock record.

    Raises:
        BoardError, ModelTooLargeError, UnsupportedOpError, NotTrainedError, ModelError (all one line).
    """
    b = load_board(board)
    if variant is None and model is None:
        variant = default_variant(b)
    src = resolve_model(variant, model)
    req = choose(b, src, backend)  # the budget check, before anything is rendered
    files, lock = render_project(b, src, req)
    target = Path(out) if out is not None else project_dir(b, src.name, req.backend)
    if target.is_file() or (target.is_dir() and any(target.iterdir()) and not (target / LOCK_FILE).is_file()):
        # the export replaces its folder whole: never a user's file or folder that is not an earlier export
        raise EdgeDigitError(f"{target}: exists and is not an edgedigit firmware project (no {LOCK_FILE}); "
                             "choose another --out or remove it")
    with staged_dir(target) as tmp:
        for rel, content in files.items():
            write_atomic(tmp / rel, content)
        write_json(tmp / LOCK_FILE, lock)
        _make_readable(tmp)
    return ExportResult(target, b, src, req.backend, req, lock["files"], lock)
