"""The README's two commands are the ones CI and users run."""

from __future__ import annotations

import re

from conftest import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)[:2]


def test_ci_runs_the_readme_test_command():
    setup_and_main, setup_and_test = _readme_commands()
    ci = (REPO / ".ci" / "run").read_text()
    assert setup_and_test in ci.splitlines(), f"{setup_and_test!r} not a line of .ci/run"
    assert "pytest" in setup_and_test and "pytest" not in setup_and_main


def test_readme_first_command_is_a_real_cli_command():
    from typer.testing import CliRunner

    from edgedigit.cli import app

    setup_and_main, _ = _readme_commands()
    args = setup_and_main.split(".venv/bin/edgedigit ", 1)[1].split()
    result = CliRunner().invoke(app, [args[0], "--help"])
    assert result.exit_code == 0, result.output
    for option in args[1:]:
        if option.startswith("--"):
            assert option in result.output
