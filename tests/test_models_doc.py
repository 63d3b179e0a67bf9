"""docs/models.md's table of models with unsupported operators is what the CLI prints: each row's command
exits with its status, prints exactly its one line (the operator named) and writes nothing."""

from __future__ import annotations

import re
import shlex

import pytest
from typer.testing import CliRunner

import odd_models
from conftest import REPO
from edgedigit.cli import app
from edgedigit.codegen.native import SUPPORTED_OPS
from helpers import tanh_tflite

BUILDERS = {"lstm": odd_models.lstm, "transpose_conv": odd_models.transpose_conv, "tanh": tanh_tflite}


def _rows() -> list[tuple[str, str, int, str]]:
    text = (REPO / "docs" / "models.md").read_text()
    table = text[text.index("| model (`tests/odd_models.py`)"):]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        model = re.match(r"`(\w+)`", cells[0]).group(1)
        rows.append((model, cells[2].strip("`"), int(cells[3]), cells[4].strip("`")))
    return rows


def test_the_table_has_rows():
    assert len(_rows()) >= 5 and {r[0] for r in _rows()} == set(BUILDERS)


@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"{r[0]}-{r[1].split('--board ')[1].split()[0]}")
def test_each_row_is_what_the_cli_prints(row, tmp_path, monkeypatch):
    model, command, status, message = row
    monkeypatch.setenv("EDGEDIGIT_BUILD", str(tmp_path / "build"))
    path = BUILDERS[model](tmp_path / f"{model}.tflite")
    args = [a.replace("<model>", str(path)) for a in shlex.split(command)][1:]
    res = CliRunner().invoke(app, args)
    expected = message.replace("<model>", str(path)).replace("<native ops>", ", ".join(SUPPORTED_OPS))
    assert res.exit_code == status
    assert res.output == expected + "\n"
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert written == ["build", "build/.edgedigit.lock", f"{model}.tflite"]  # nothing written but the folder's lock
