"""Where things live: the build tree (generated output), the firmware templates and the board files."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[3]


def repo_root() -> Path:
    """The repository checkout this package runs from (third-party trees are found relative to it)."""
    return _REPO_ROOT


def build_dir() -> Path:
    """The build tree: ``$EDGEDIGIT_BUILD`` if set, else ``./build`` in the current directory."""
    return Path(os.environ.get("EDGEDIGIT_BUILD") or Path.cwd() / "build")


def models_dir() -> Path:
    return build_dir() / "models"


def model_dir(variant: str) -> Path:
    return models_dir() / variant


def firmware_dir() -> Path:
    return build_dir() / "firmware"


def results_dir() -> Path:
    return build_dir() / "results"


def reports_dir() -> Path:
    return build_dir() / "reports"


def search_dir(board: str | None = None) -> Path:
    """``build/search/`` (the cost-model calibration), or ``build/search/<board>/`` (one board's study)."""
    root = build_dir() / "search"
    return root / board if board else root


SEARCH_FRONT = "pareto.json"  # a board's study summary and Pareto front, in search_dir(board)


def promoted_dir() -> Path:
    """``build/search/promoted/``: the specs of searched models promoted to variants (the registry reads it)."""
    return build_dir() / "search" / "promoted"


def _shipped(package: str, repo_folder: str) -> Path:
    """A data folder that sits at the top of the repository and ships inside the wheel as ``package``."""
    local = _REPO_ROOT / repo_folder
    if local.is_dir() and (_REPO_ROOT / "pyproject.toml").is_file():
        return local
    return Path(str(resources.files(package)))


def templates_dir() -> Path:
    """``firmware_templates/``: Jinja templates and the hand-written C runtime beside them."""
    return _shipped("edgedigit.firmware_templates", "firmware_templates")


def boards_dir() -> Path:
    """``boards/``: one TOML file per board."""
    return _shipped("edgedigit.boards_data", "boards")
