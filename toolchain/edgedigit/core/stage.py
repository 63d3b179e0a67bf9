"""A stage's declaration: what its outputs depend on, which files it writes, and how to run it.

Each stage module (``models.train``, ``models.quantize``, ...) declares its own :class:`Stage`, so the
pipeline only orders stages and keeps their hash stamps; it does not re-derive file names or inputs.

``inputs()`` returns what the outputs depend on (sha256 of input files through :func:`file_hash`, and the
settings that shape the output); it raises :class:`Blocked` when an input file an earlier stage should
have written is absent. ``outputs()`` lists the files the stage writes. ``run()`` does the work; it may
raise :class:`NotApplicable` (e.g. the model does not fit the board) or :class:`Blocked`. ``incomplete()``
says why the outputs on disk are not a complete result although every file exists (a results file holding
fewer samples than its summary counts, a project file that differs from its lock file), or None.

Files are named relative to the build folder (:func:`relative`), so a build folder copied or moved
elsewhere keeps its stamps valid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fsutil import sha256_file
from .paths import build_dir


class Blocked(Exception):
    """An input of a stage does not exist (an earlier stage did not produce it)."""


class NotApplicable(Exception):
    """The stage does not apply (e.g. the model does not fit the board); the reason is printed."""


@dataclass
class Stage:
    """One step of the pipeline (see the module docstring)."""

    name: str
    inputs: Callable[[], dict[str, Any]]
    outputs: Callable[[], list[Path]]
    run: Callable[[], None]
    incomplete: Callable[[], str | None] = lambda: None


def relative(path: Path) -> str:
    """``path`` relative to the build folder (POSIX separators); an absolute path when it lies outside."""
    path = Path(path)
    try:
        return path.absolute().relative_to(build_dir().absolute()).as_posix()
    except ValueError:
        return str(path)


def files_hashes(paths: list[Path]) -> dict[str, str]:
    """sha256 of each file, keyed by :func:`relative` name (an input of a stage reading many files).

    Raises:
        Blocked: a file does not exist.
    """
    return {relative(p): file_hash(p) for p in paths}


def file_hash(path: Path) -> str:
    """sha256 of an input file.

    Raises:
        Blocked: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise Blocked(f"{path} missing")
    return sha256_file(path)


class MissingPart(Exception):
    """Something the stage needs is not installed here (e.g. a tool); the reason is printed."""


def quantized_hashes(variants: Any) -> dict[str, str]:
    """sha256 of each variant's deployable artifact.

    Args:
        variants: objects with ``name`` and ``kind`` (the variant registry's entries).

    Raises:
        Blocked: an artifact is missing (the variant is not trained or not quantized yet).
    """
    from .store import ModelFolder

    return {v.name: file_hash(ModelFolder(v.name).quantized_path(v.kind)) for v in variants}
