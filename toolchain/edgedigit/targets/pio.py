"""Build and flash through PlatformIO (``pio``), and make for the boards built without it.

Every external call goes through :func:`_run` (``subprocess.run``), the one boundary tests replace.
Failures become one-line :class:`ToolError` messages: PlatformIO missing, its registry unreachable
(``HTTPClientError`` in its output: platforms, toolchains and libraries download on the first build),
no serial port, or a failed build/upload (the last lines of its output are quoted).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from ..core.errors import ToolError
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


def build_command(board: Board) -> list[str]:
    """The command that builds a project for ``board`` (run inside the project folder)."""
    if board.build == "make":
        return ["make"]
    return [find_pio(), "run"]


def build(board: Board, project: Path) -> subprocess.CompletedProcess:
    """Build ``project``: ``pio run`` (or ``make`` for host/qemu boards).

    Raises:
        ToolError: the tool is missing, the registry is unreachable, or the build failed.
    """
    _project_check(board, project)
    cmd = build_command(board)
    proc = _run(cmd, cwd=project)
    _check(proc, " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)), project)
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


def flash(board: Board, project: Path, port: str | None = None) -> tuple[str, subprocess.CompletedProcess]:
    """Build and upload ``project`` to the board on ``port`` (default: found by the board's USB ids).

    Returns:
        The port used and the finished process.

    Raises:
        ToolError: not a PlatformIO board, pio missing, registry unreachable, upload failed.
        ToolError: no matching serial port.
    """
    if board.build != "platformio":
        raise ToolError(f"board {board.id} is not flashed: it runs on this computer; use "
                        f"`edgedigit bench device --board {board.id}`")
    _project_check(board, project)
    if port is None:
        port = find_port(board)
    proc = _run(upload_command(board, port), cwd=project)
    _check(proc, f"pio run -t upload --upload-port {port}", project)
    return port, proc
