"""The export stage: board + model + backend -> a complete firmware project in ``build/firmware/``.

Steps (COMMON contract 6): resolve the board, the model (a trained variant or any int8 .tflite; without
one, the variant :func:`backends.choose` ranks first) and the backend (:mod:`.backends`); check the
flash/RAM budget BEFORE rendering anything; render every file in memory (the backend's own files come from
``Backend.generate``); write them into a staged folder that replaces the project in one rename; record
everything that went into it in ``edgedigit.lock.json``. Nothing depends on the clock or the output path,
so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..core.errors import EdgeDigitError, ModelError, ModelTooLargeError, UnsupportedOpError
from ..core.fsutil import jsonable, sha256_file, staged_dir, write_atomic, write_json
from ..core.paths import build_dir, firmware_dir, templates_dir
from ..core.stage import NotApplicable, Stage, file_hash, quantized_hashes
from ..core.store import Card, ModelFolder, not_quantized, nothing_trained, read_card, trained_variants
from .backends import (
    BACKENDS,
    Fit,
    ModelSource,
    Requirement,
    choose,
    default_backend,
    judge,
    kind_problems,
    mlperf_id_for,
    problem,
    tflm_library,
)
from .boards import Board, load_board

LOCK_FILE = "edgedigit.lock.json"


@dataclass
class ExportResult:
    path: Path
    board: Board
    model: ModelSource
    backend: str
    requirement: Requirement
    files: dict[str, str]  # relative path -> sha256
    lock: dict[str, Any]


# ---- models ----------------------------------------------------------------------------------------------

def _relative_name(path: Path) -> str:
    try:
        return path.resolve().relative_to(build_dir().resolve()).as_posix()
    except ValueError:
        return path.name


def load_fixed_lr(path: Path) -> Any:
    """The rfe-lr fixed-point tables from a ``.npz`` with pixels, weights, bias, scale (COMMON contract 4).

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


def _variant_source(variant: str, card: Card) -> ModelSource:
    """A trained variant's deployable artifact as a :class:`ModelSource`."""
    from ..core.graph import load_graph

    kind = card.kind
    path = ModelFolder(variant).quantized_path(kind)
    if not path.is_file():
        raise not_quantized(variant, path)
    if kind == "neural":
        graph = load_graph(path)
        return ModelSource(variant, kind, path, graph.sha256, _relative_name(path), card, graph)
    return ModelSource(variant, kind, path, sha256_file(path), _relative_name(path), card, None, load_fixed_lr(path))


def resolve_model(variant: str | None = None, model: Path | None = None, mlperf_id: str | None = None) -> ModelSource:
    """The model to export: a trained variant's int8 artifact, or any int8 .tflite given by path.

    Args:
        variant: a trained variant.
        model: any int8 .tflite instead.
        mlperf_id: the MLPerf Tiny id ``profile%`` reports (default: derived from the .tflite's name, see
            ``backends.mlperf_id_for``; a variant reports its name).

    Raises:
        NotTrainedError: the variant has no card or is not quantized yet.
        ModelError: the file is missing or not a usable model, or an unknown MLPerf id.
    """
    from ..core.graph import load_graph

    if (variant is None) == (model is None):
        raise EdgeDigitError("give exactly one of --variant or --model")
    if model is not None:
        path = Path(model)
        if path.suffix != ".tflite":
            raise ModelError(f"{path}: --model takes an int8 .tflite file")
        graph = load_graph(path)
        return ModelSource(path.stem, "neural", path, graph.sha256, _relative_name(path), None, graph,
                           mlperf_id=mlperf_id_for(path.stem, mlperf_id))
    src = _variant_source(variant, read_card(variant))
    src.mlperf_id = mlperf_id_for(variant, mlperf_id) if mlperf_id is not None else None
    return src


# ---- which model, which backend --------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def judge_variant(board: Board, variant: str, min_accuracy: float | None = None) -> Fit:
    """Whether trained ``variant`` can be chosen for ``board``: with which backend, or every reason why not.

    Never raises for the variant's own problems (not quantized, an op no backend runs, a broken artifact,
    too large): they become ``Fit.reasons``, so one such variant does not stop a choice among the others.

    Raises:
        NotTrainedError: ``variant`` has no card.
    """
    try:
        card = read_card(variant)
    except ModelError as e:  # a card that is not valid JSON: this variant cannot be judged, the others can
        return Fit(variant, None, reasons=[str(e)])
    acc = card.int8_accuracy
    try:
        src = _variant_source(variant, card)
    except EdgeDigitError as e:  # not quantized, or a broken artifact: say which
        return Fit(variant, acc, card=card, reasons=[str(e)])
    pre = []
    if acc is None:
        pre.append(f"its card has no int8 accuracy: run `edgedigit quantize {variant}`")
    elif min_accuracy is not None and acc < min_accuracy:
        pre.append(f"int8 accuracy {_pct(acc)} < required {_pct(min_accuracy)}")
    try:
        fit = judge(board, src, recorded=True)
    except EdgeDigitError as e:  # a model no backend can use (e.g. not full int8)
        fit = Fit(variant, acc, src, card, reasons=[str(e)])
    fit.reasons[:0] = pre
    return fit


def judge_trained(board: Board, min_accuracy: float | None = None) -> list[Fit]:
    """Every trained variant judged against ``board`` (by name); rank them with :func:`backends.choose`.

    Raises:
        NotTrainedError: nothing is trained yet.
    """
    names = trained_variants()
    if not names:
        raise nothing_trained()
    return [judge_variant(board, name, min_accuracy) for name in names]


def _fits_clause(board: Board, exclude: str | None) -> str:
    names = trained_variants()
    fits = [name for name in names if name != exclude and judge_variant(board, name).requirement is not None]
    return f"fits: {', '.join(fits)}" if fits else "no trained variant fits"


def _best(board: Board) -> Fit:
    """The trained variant :func:`backends.choose` puts first for ``board``.

    Raises:
        NotTrainedError: nothing is trained yet.
        ModelTooLargeError: nothing trained fits.
    """
    fits = judge_trained(board)
    ranked = choose(fits)
    if not ranked:
        raise ModelTooLargeError(f"none of the trained variants ({', '.join(f.name for f in fits)}) fits {board.id}'s "
                                 f"{board.flash_bytes:,} B flash / {board.ram_bytes:,} B RAM; train a smaller one "
                                 f"(e.g. rfe-lr) or pick a bigger board")
    return ranked[0]


def default_variant(board: Board) -> str:
    """The most accurate trained variant (card ``int8_accuracy``) that fits ``board``; ties: less flash, name.

    Raises:
        NotTrainedError: nothing is trained yet.
        ModelTooLargeError: nothing trained fits.
    """
    return _best(board).name


def fit_backend(board: Board, src: ModelSource, backend: str | None = None) -> Requirement:
    """Pick the backend (explicit or the board's first usable one) and check the budget.

    Raises:
        UnsupportedOpError / BoardError: the backend cannot run this model here (why, and how to fix).
        ModelTooLargeError: it does not fit; the numbers and the variants that would fit are named.
    """
    if backend is not None:
        why = problem(board, src, backend)
        if why is not None:
            raise UnsupportedOpError(why)
        req = BACKENDS[backend].requirement(board, src)
        if req.fits:
            return req
        worst = req
    else:
        fit = judge(board, src)
        if fit.requirement is not None:
            return fit.requirement
        if not fit.too_large:
            raise UnsupportedOpError(f"no backend of {board.id} can run {src.name}: {'; '.join(kind_problems(fit, src))}")
        worst = fit.too_large[0]
    # a trained variant: say which others fit; a model given by path has nothing to do with the trained ones
    tail = f"; {_fits_clause(board, src.name)}" if src.card is not None else ""
    raise ModelTooLargeError(f"{src.name} ({worst.backend}): {worst.shortfall()}{tail}")


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


def _merge(into: dict[str, str | bytes], new: dict[str, str | bytes], where: str) -> None:
    for name, content in new.items():
        if name in into:
            raise EdgeDigitError(f"export: two sources both provide {where}{name}")
        into[name] = content


def render_project(board: Board, src: ModelSource, req: Requirement,
                   kernels: str | None = None) -> dict[str, str | bytes]:
    """All files of the project (relative path -> content), rendered in memory; the lock file aside.

    Args:
        kernels: the TFLM kernels of a board that builds TFLM from a source tree (default: the tree's first
            one this board's compiler builds, cmsis-nn on Cortex-M).
    """
    from ..codegen.render import banner

    platform_dir = templates_dir() / "platform" / board.platform
    if not platform_dir.is_dir():
        raise EdgeDigitError(f"{board.path}: platform folder {platform_dir} does not exist")
    src_files: dict[str, str | bytes] = {}
    _merge(src_files, _render_folder(templates_dir() / "runtime", {}), "src/")
    _merge(src_files, BACKENDS[req.backend].generate(board, src, req), "src/")
    model_info = {
        "variant": src.name, "backend": req.backend, "kind": src.kind, "sha256": src.sha256,
        "source": src.source_name, "num_classes": src.num_classes, "io": src.io.as_dict(),
        "mlperf_id": src.mlperf_id, "arena_bytes": req.arena,
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
    _merge(files, BACKENDS[req.backend].project_files(board, src, req, kernels), "")
    project = {}
    if board.build == "platformio":
        project["platformio.ini"] = _render_one("project/platformio.ini.j2", ctx)
    project["README.md"] = _render_one("project/README.md.j2", ctx)
    _merge(files, project, "")
    return files


def _render_one(template: str, ctx: dict[str, Any]) -> str:
    from ..codegen.render import render

    return render(template, **ctx)


def _lock(board: Board, src: ModelSource, req: Requirement, hashes: dict[str, str],
          kernels: str | None = None) -> dict[str, Any]:
    """What went into the project: versions, the board file, the model and its card, the budget, and the
    sha256 of every file (``hashes``: relative path -> sha256)."""
    from ..core.store import versions

    card = src.card or {}
    lock = {
        "edgedigit": __version__,
        "board": {"id": board.id, "name": board.name, "file_sha256": sha256_file(board.path),
                  "platformio": board.as_dict()["platformio"], "tflm": BACKENDS[req.backend].lock(board, kernels),
                  "counter": board.as_dict()["counter"]},
        "model": {"name": src.name, "kind": src.kind, "source": src.source_name, "sha256": src.sha256,
                  "mlperf_id": src.mlperf_id, "io": src.io.as_dict(),
                  "crc32": f"{BACKENDS[req.backend].model_crc32(src):08x}",
                  "card": {k: card.get(k) for k in ("variant", "seed", "dataset", "quantization", "int8_accuracy",
                                                    "size_bytes")} if src.card is not None else None},
        "backend": req.backend,
        "budget": req.as_dict(),
        "versions": versions(),
        "files": dict(sorted(hashes.items())),
    }
    return json.loads(json.dumps(lock, default=jsonable))


# Folders of a project whose files are compiled: a file there that the lock does not list changes the build.
COMPILED_FOLDERS = ("src", "include", "lib")


def project_changes(project: Path) -> list[str]:
    """How ``project`` differs from its ``edgedigit.lock.json``: one phrase per file, empty when it does not.

    A file the lock lists that is missing or has another sha256, or a file in a compiled folder (``src``,
    ``include``, ``lib``) that the lock does not list. Build outputs (``build/``, ``.pio/``) are not checked.

    Raises:
        ModelError: no lock file, or one that is not edgedigit's (the project was not exported).
    """
    project = Path(project)
    lock_path = project / LOCK_FILE
    try:
        lock = json.loads(lock_path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{project}: not an exported firmware project (no {LOCK_FILE}); export one with "
                         "`edgedigit export`") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{lock_path}: unreadable ({e}); export the project again") from None
    files = lock.get("files") if isinstance(lock, dict) else None
    if not isinstance(files, dict):
        raise ModelError(f"{lock_path}: no 'files' table; export the project again")
    changes = []
    for rel, sha in sorted(files.items()):
        path = project / rel
        if not path.is_file():
            changes.append(f"{path}: missing since export")
        elif sha256_file(path) != sha:
            changes.append(f"{path}: modified since export (sha256 {str(sha)[:12]}... in {LOCK_FILE})")
    for folder in COMPILED_FOLDERS:
        if (project / folder).is_dir():
            for path in sorted(p for p in (project / folder).rglob("*") if p.is_file()):
                if path.relative_to(project).as_posix() not in files:
                    changes.append(f"{path}: added since export (not in {LOCK_FILE})")
    return changes


def project_dir(board: Board, name: str, backend: str, kernels: str | None = None) -> Path:
    """``build/firmware/<board>/<variant>-<backend>/`` (``<variant>-tflm-<kernels>`` for TFLM kernels other
    than the board's default)."""
    label = backend
    if kernels is not None and backend == "tflm":
        lib = tflm_library(board)
        if lib is None or kernels != lib.kernels:
            label = f"{backend}-{kernels}"
    return firmware_dir() / board.id / f"{name}-{label}"


def export(board: str, variant: str | None = None, model: Path | None = None, backend: str | None = None,
           out: Path | None = None, kernels: str | None = None, mlperf_id: str | None = None) -> ExportResult:
    """Export a complete firmware project.

    Args:
        board: board id or alias.
        variant: a trained variant; default (with ``model`` None): the most accurate one that fits.
        model: any int8 .tflite instead of a variant.
        backend: ``tflm``, ``native`` or ``linear``; default: the board's first backend that can run it.
        out: the project folder; default ``build/firmware/<board>/<variant>-<backend>/``.
        kernels: TFLM kernels (``cmsis-nn``, ``reference``, ``esp-nn``) on a board that compiles TFLM from a
            source tree (qemu-m4, host); default: the tree's first one the board's compiler builds.
        mlperf_id: the MLPerf Tiny id ``profile%`` reports (ic01, kws01, vww01, ad01); default: derived from
            the model file's name, else the variant.

    Returns:
        Where it went, what went in, and the lock record.

    Raises:
        BoardError, ModelTooLargeError, UnsupportedOpError, NotTrainedError, ModelError (all one line).
    """
    b = load_board(board)
    # the model: the most accurate trained variant that fits (the one selection policy), or the given one
    src = _best(b).src if variant is None and model is None else resolve_model(variant, model, mlperf_id)
    if variant is None and model is None and mlperf_id is not None:
        src.mlperf_id = mlperf_id_for(src.name, mlperf_id)
    req = fit_backend(b, src, backend)  # the budget check, before anything is rendered
    if kernels is not None and (req.backend != "tflm" or tflm_library(b) is None):
        raise EdgeDigitError(f"kernels {kernels}: only the tflm backend of a board that compiles TFLM from a source "
                             f"tree takes them (qemu-m4, host); this export is {req.backend} on {b.id}")
    files = render_project(b, src, req, kernels)
    target = Path(out) if out is not None else project_dir(b, src.name, req.backend, kernels)
    if target.is_file() or (target.is_dir() and any(target.iterdir()) and not (target / LOCK_FILE).is_file()):
        # the export replaces its folder whole: never a user's file or folder that is not an earlier export
        raise EdgeDigitError(f"{target}: exists and is not an edgedigit firmware project (no {LOCK_FILE}); "
                             "choose another --out or remove it")
    with staged_dir(target) as tmp:
        for rel, content in files.items():
            write_atomic(tmp / rel, content)
        lock = _lock(b, src, req, {rel: sha256_file(tmp / rel) for rel in files}, kernels)
        write_json(tmp / LOCK_FILE, lock)
    return ExportResult(target, b, src, req.backend, req, lock["files"], lock)


def stage(board: Board, variant: Any) -> Stage | None:
    """The pipeline's ``export <board> <variant> <backend>`` stage (None: no backend of the board runs its kind).

    The backend is the board's first that runs the variant's kind (the pipeline plans before any model
    exists); a model that does not fit is "not applicable" with the numbers, not a failure. A project whose
    files no longer match its lock file (:func:`project_changes`) is incomplete: the stage runs again.
    """
    backend = default_backend(board, variant.kind)
    if backend is None:
        return None
    project = project_dir(board, variant.name, backend)

    def run() -> None:
        try:
            export(board.id, variant=variant.name, backend=backend)
        except ModelTooLargeError as e:
            raise NotApplicable(str(e)) from None

    def incomplete() -> str | None:
        try:
            changes = project_changes(project)
        except ModelError as e:
            return str(e)
        return "; ".join(changes[:3]) if changes else None

    return Stage(f"export {board.id} {variant.name} {backend}",
                 lambda: {"model": quantized_hashes([variant])[variant.name], "board": file_hash(board.path)},
                 lambda: [project / LOCK_FILE], run, incomplete)
