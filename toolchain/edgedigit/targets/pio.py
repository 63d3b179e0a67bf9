"""Build and flash through PlatformIO (``pio``), and make for the boards built without it.

Every external call goes through :func:`_run` (``subprocess.run``), the one boundary tests replace.
Failures become one-line :class:`ToolError` messages: PlatformIO missing, its registry unreachable
(``HTTPClientError`` in its output: platforms, toolchains and libraries download on the first build),
no serial port, or a failed build/upload (the last lines of its output are quoted).

Before anything is built (``build``, ``flash``, and ``bench device`` on the boards built here) the
project goes through :func:`before_build`: every file must still be the one its ``edgedigit.lock.json``
records (an edited, missing or added file is refused by name; ``force`` builds it anyway and says so), and
every tool the board file lists in ``[tools]`` must be installed (named with its Debian package).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import ModelError, ToolError
from ..core.results import BUILDS, ResultFile
from ..core.stage import relative
from .boards import Board

REGISTRY_MARKERS = ("HTTPClientError", "Could not resolve host", "Max retries exceeded", "Temporary failure in name resolution")


def find_pio() -> str:
    """The ``pio`` executable: on PATH, else beside this Python (a venv's bin).

    Raises:
        ToolError: PlatformIO is not installed.
    """
    found = shutil.which("pio") or shutil.which("platformio")
    if found:
        return found
    beside = Path(sys.executable).parent / "pio"
    if beside.is_file():
        return str(beside)
    raise ToolError("PlatformIO (pio) is not installed: `pip install platformio` (or see https://platformio.org/install)")


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ToolError(f"{cmd[0]} not found: is it installed and on PATH?") from None


def _tail(text: str, lines: int = 3) -> str:
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(kept) if kept else "no output"


def _check(proc: subprocess.CompletedProcess, what: str, project: Path) -> None:
    output = (proc.stdout or "") + (proc.stderr or "")
    if any(marker in output for marker in REGISTRY_MARKERS):
        raise ToolError(f"{what} in {project}: the PlatformIO registry cannot be reached (HTTPClientError); the first "
                        f"build downloads the platform, toolchain and libraries, so connect to the internet once")
    if proc.returncode != 0:
        raise ToolError(f"{what} in {project} failed (exit {proc.returncode}): {_tail(output)}")


def _project_check(board: Board, project: Path) -> None:
    marker = "platformio.ini" if board.build == "platformio" else "Makefile"
    if not (project / marker).is_file():
        raise ToolError(f"{project} has no {marker}: run `edgedigit export --board {board.id}` first")


def missing_tools(board: Board) -> None:
    """Name the first tool of the board's ``[tools]`` that is not installed, with its Debian package.

    Raises:
        ToolError: one line, e.g. ``arm-none-eabi-gcc is not installed: ...; Debian: apt-get install ...``.
    """
    for tool, package in board.tools.items():
        if shutil.which(tool) is None:
            raise ToolError(f"{tool} is not installed: board {board.id} builds with it; "
                            f"Debian: apt-get install {package}")


def before_build(board: Board, project: Path, force: bool = False,
                 warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Check ``project`` before it is built for ``board``: its lock file, then the board's tools.

    Args:
        board: the board it is built for.
        project: the exported project folder.
        force: build a project that differs from its lock file anyway (each difference goes to ``warn``).
        warn: where the differences go when ``force`` is set (default: stderr).

    Returns:
        What was checked, for the results: ``{"lock": "verified" | "forced", "changes": [...]}``.

    Raises:
        ModelError: a file differs from the lock file (named, with how to fix it), unless ``force``.
        ToolError: a tool the board lists is not installed.
    """
    from .export import project_changes

    try:
        changes = project_changes(project)
    except ModelError:
        if not force:
            raise
        changes = [f"{project}: no readable lock file"]
    if changes and not force:
        more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
        raise ModelError(f"{changes[0]}{more}; export it again (`edgedigit export --board {board.id}`) or pass "
                         "--force to build it anyway")
    if changes:
        say = warn if warn is not None else (lambda msg: print(msg, file=sys.stderr))
        for change in changes:
            say(f"warning: --force: building a project that is not the exported one: {change}")
    missing_tools(board)
    return {"lock": "forced" if changes else "verified", "changes": changes}


def record_build(command: str, board: Board, project: Path, checked: dict[str, Any]) -> None:
    """Append what was built (board, project, lock verified or forced, the changes) to ``results/builds.jsonl``."""
    ResultFile(BUILDS).append({"command": command, "board": board.id, "project": relative(project), **checked})


def build_command(board: Board) -> list[str]:
    """The command that builds a project for ``board`` (run inside the project folder)."""
    if board.build == "make":
        return ["make"]
    return [find_pio(), "run"]


def build(board: Board, project: Path, force: bool = False,
          warn: Callable[[str], None] | None = None) -> subprocess.CompletedProcess:
    """Build ``project``: ``pio run`` (or ``make`` for host/qemu boards), after :func:`before_build`.

    Raises:
        ModelError: the project differs from its lock file (without ``force``).
        ToolError: the tool is missing, the registry is unreachable, or the build failed.
    """
    _project_check(board, project)
    checked = before_build(board, project, force, warn)
    cmd = build_command(board)
    proc = _run(cmd, cwd=project)
    _check(proc, " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)), project)
    record_build("build", board, project, checked)
    return proc


def list_ports() -> list[dict]:
    """Serial ports as ``pio device list --json-output`` reports them (works offline).

    Raises:
        ToolError: pio is missing, failed, or printed something that is not JSON.
    """
    cmd = [find_pio(), "device", "list", "--json-output"]
    proc = _run(cmd)
    if proc.returncode != 0:
        raise ToolError(f"pio device list failed (exit {proc.returncode}): {_tail(proc.stdout + proc.stderr)}")
    try:
        ports = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise ToolError(f"pio device list printed no JSON: {_tail(proc.stdout)}") from None
    if not isinstance(ports, list):
        raise ToolError("pio device list printed JSON that is not a list of ports")
    return ports


def _usb_id(port: dict) -> str | None:
    hwid = str(port.get("hwid", ""))
    import re

    m = re.search(r"VID:PID=([0-9A-Fa-f]{4}):([0-9A-Fa-f]{4})", hwid)
    return f"{m.group(1).upper()}:{m.group(2).upper()}" if m else None


def find_port(board: Board) -> str:
    """The serial port of a connected ``board``: the one port whose USB id the board file lists.

    Raises:
        ToolError: no port at all, none with the board's USB ids, or several (pass ``--port``).
    """
    ports = list_ports()
    if not ports:
        raise ToolError(f"no serial port found for {board.id}: is the board plugged in (and its USB driver "
                          f"installed)? `pio device list` lists none")
    wanted = {u.upper() for u in board.serial.usb_ids}
    matches = [p["port"] for p in ports if _usb_id(p) in wanted]
    if not matches:
        seen = ", ".join(f"{p.get('port')} ({_usb_id(p) or 'no USB id'})" for p in ports)
        raise ToolError(f"no serial port with a USB id of {board.id} ({', '.join(board.serial.usb_ids)}); "
                          f"ports seen: {seen}; pass --port")
    if len(matches) > 1:
        raise ToolError(f"several ports look like a {board.id}: {', '.join(matches)}; pass --port")
    return matches[0]


def upload_command(board: Board, port: str | None) -> list[str]:
    """``pio run -t upload [--upload-port PORT]``."""
    cmd = [find_pio(), "run", "-t", "upload"]
    if port:
        cmd += ["--upload-port", port]
    return cmd


def flash(board: Board, project: Path, port: str | None = None, force: bool = False,
          warn: Callable[[str], None] | None = None) -> tuple[str, subprocess.CompletedProcess]:
    """Build and upload ``project`` to the board on ``port`` (default: found by the board's USB ids),
    after :func:`before_build`.

    Returns:
        The port used and the finished process.

    Raises:
        ModelError: the project differs from its lock file (without ``force``).
        ToolError: not a PlatformIO board, pio missing, registry unreachable, upload failed.
        ToolError: no matching serial port.
    """
    if board.build != "platformio":
        raise ToolError(f"board {board.id} is not flashed: it runs on this computer; use "
                        f"`edgedigit bench device --board {board.id}`")
    _project_check(board, project)
    checked = before_build(board, project, force, warn)
    if port is None:
        port = find_port(board)
    proc = _run(upload_command(board, port), cwd=project)
    _check(proc, f"pio run -t upload --upload-port {port}", project)
    record_build("flash", board, project, {**checked, "port": port})
    return port, proc
