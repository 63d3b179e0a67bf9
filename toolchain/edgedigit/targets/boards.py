"""Boards as data: ``boards/<id>.toml`` loaded into validated, frozen dataclasses.

The file name is the board id; ``aliases`` adds other names (``esp32`` -> ``esp32dev``). A missing,
unknown or mistyped field is refused with the file and the field named, so a typo in a board file never
turns into a silently wrong budget or build.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import BoardError
from ..core.paths import boards_dir
from .backends import BACKENDS as _REGISTRY

BACKENDS = tuple(_REGISTRY)  # the backend names a board may list: the registry's (targets/backends.py)
BUILDS = ("platformio", "make")


@dataclass(frozen=True)
class PlatformIOEnv:
    """The ``[env]`` of a PlatformIO project for this board (pinned platform and libraries)."""

    platform: str
    board: str
    framework: str
    lib_deps: tuple[str, ...]
    build_flags: tuple[str, ...]
    upload_speed: int
    monitor_speed: int
    board_build: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SerialSpec:
    baud: int
    usb_ids: tuple[str, ...]  # "VID:PID" in hex


@dataclass(frozen=True)
class Counter:
    """How the firmware counts time precisely (``edgedigit_platform_counter``)."""

    name: str
    unit: str
    how: str


@dataclass(frozen=True)
class TflmLibrary:
    """The TFLM library pinned for this board and what it can run correctly."""

    library: str
    version: str
    date: str
    source: str
    include: str  # umbrella header to include first ("" for none)
    per_channel_fully_connected: bool
    ops: frozenset[str]  # builtin operator names its MicroMutableOpResolver can register
    # Boards built with make compile TFLM from a source tree (targets/tflm_lib.py): the default tree, relative
    # to the repository root ($EDGEDIGIT_TFLM_SRC overrides it). Then the tree itself says which operators
    # it registers and whether it computes per-channel FULLY_CONNECTED; the fields above describe the default.
    tree: str = ""


@dataclass(frozen=True)
class RuntimeEstimate:
    """Flash and RAM the firmware needs besides the model: core, protocol, runtime code."""

    flash: int
    ram: int
    basis: str
    # True where the toolchain copies the backend's const model tables into SRAM at start-up (AVR without
    # PROGMEM): the budget then counts them in RAM as well as in flash.
    weights_in_ram: bool = False
    # True where plain `const` data is copied to SRAM at start-up (AVR): the model tables the backend reads as
    # plain memory, not through EDGEDIGIT_ROM (the native backend's constant operands of ADD, MUL,
    # CONCATENATION), count in RAM as well as in flash.
    const_in_ram: bool = False
    # True where the native runner keeps a digit image in the arena's input bytes instead of a copy of its own
    # (codegen.native.NativeProgram.input_in_place): the budget then counts no separate input buffer.
    input_in_arena: bool = False
    # The operators whose kernel code ``flash`` covers (empty: all of them); a model with any other operator
    # needs ``other_ops_flash`` more (the measured code of the other kernels).
    ops: tuple[str, ...] = ()
    other_ops_flash: int = 0
    # ``flash`` covers a model of up to ``calls`` kernel calls; each further call (its parameter struct and the
    # code of the call) needs ``flash_per_call`` more. 0: not counted per call.
    calls: int = 0
    flash_per_call: int = 0


@dataclass(frozen=True)
class Board:
    id: str
    path: Path
    name: str
    aliases: tuple[str, ...]
    mcu: str
    clock_hz: int
    flash_bytes: int
    ram_bytes: int
    platform: str  # folder under firmware_templates/platform/
    build: str  # "platformio" or "make"
    backends: tuple[str, ...]
    serial: SerialSpec
    counter: Counter
    runtime: dict[str, RuntimeEstimate]
    platformio: PlatformIOEnv | None = None
    tflm: TflmLibrary | None = None
    unsupported: dict[str, str] = field(default_factory=dict)  # backend -> why not
    run: dict[str, Any] = field(default_factory=dict)  # free-form emulator/host settings (H4)
    tools: dict[str, str] = field(default_factory=dict)  # executable the build needs -> Debian package

    def why_not(self, backend: str) -> str:
        """One sentence on why ``backend`` is not available on this board."""
        reason = self.unsupported.get(backend)
        base = f"board {self.id} does not support backend {backend} (supported: {', '.join(self.backends)})"
        return f"{base}: {reason}" if reason else base

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (``edgedigit boards --json``, lock files, templates)."""
        from dataclasses import asdict

        d = asdict(self)
        d["path"] = str(self.path)
        if self.tflm is not None:
            d["tflm"]["ops"] = sorted(self.tflm.ops)
        return d


# field -> (type, required); "str_list" is a list of strings
_TOP = {
    "name": (str, True), "aliases": ("str_list", False), "mcu": (str, True), "clock_hz": (int, True),
    "flash_bytes": (int, True), "ram_bytes": (int, True), "platform": (str, True), "build": (str, True),
    "backends": ("str_list", True), "serial": (dict, True), "counter": (dict, True), "runtime": (dict, True),
    "platformio": (dict, False), "tflm": (dict, False), "unsupported": (dict, False), "run": (dict, False),
    "tools": (dict, False),
}
_PIO = {
    "platform": (str, True), "board": (str, True), "framework": (str, True), "lib_deps": ("str_list", True),
    "build_flags": ("str_list", True), "upload_speed": (int, True), "monitor_speed": (int, True),
    "board_build": (dict, False),
}
_SERIAL = {"baud": (int, True), "usb_ids": ("str_list", True)}
_COUNTER = {"name": (str, True), "unit": (str, True), "how": (str, True)}
_TFLM = {
    "library": (str, True), "version": (str, True), "date": (str, True), "source": (str, True),
    "include": (str, True), "per_channel_fully_connected": (bool, True), "ops": ("str_list", True),
    "tree": (str, False),
}
_RUNTIME = {"flash": (int, True), "ram": (int, True), "basis": (str, True), "weights_in_ram": (bool, False),
            "const_in_ram": (bool, False), "input_in_arena": (bool, False), "ops": ("str_list", False),
            "other_ops_flash": (int, False), "calls": (int, False), "flash_per_call": (int, False)}


def _check(table: dict[str, Any], spec: dict[str, tuple[Any, bool]], path: Path, where: str) -> dict[str, Any]:
    prefix = f"[{where}] " if where else ""
    for key in table:
        if key not in spec:
            raise BoardError(f"{path}: unknown field {prefix}'{key}' (known: {', '.join(spec)})")
    for key, (kind, required) in spec.items():
        if key not in table:
            if required:
                raise BoardError(f"{path}: missing field {prefix}'{key}'")
            continue
        value = table[key]
        if kind == "str_list":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            want = "a list of strings"
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            want = "a non-negative integer"
        else:
            ok = isinstance(value, kind)
            want = {str: "a string", bool: "true or false", dict: "a table"}[kind]
        if not ok:
            raise BoardError(f"{path}: field {prefix}'{key}' must be {want}, got {value!r}")
    return table


def load_board_file(path: Path) -> Board:
    """Load and validate one board file.

    Raises:
        BoardError: unreadable TOML, or a missing, unknown or mistyped field (the file and field named).
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise BoardError(f"{path}: cannot read the board file ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise BoardError(f"{path}: not valid TOML ({e})") from None
    _check(raw, _TOP, path, "")
    backends = tuple(raw["backends"])
    for b in backends:
        if b not in BACKENDS:
            raise BoardError(f"{path}: field 'backends' has unknown backend '{b}' (known: {', '.join(BACKENDS)})")
    if raw["build"] not in BUILDS:
        raise BoardError(f"{path}: field 'build' must be one of {', '.join(BUILDS)}, got {raw['build']!r}")
    pio = None
    if "platformio" in raw:
        t = _check(raw["platformio"], _PIO, path, "platformio")
        pio = PlatformIOEnv(t["platform"], t["board"], t["framework"], tuple(t["lib_deps"]), tuple(t["build_flags"]),
                            t["upload_speed"], t["monitor_speed"], {k: str(v) for k, v in t.get("board_build", {}).items()})
    elif raw["build"] == "platformio":
        raise BoardError(f"{path}: missing field '[platformio]' (needed when build = \"platformio\")")
    tflm = None
    if "tflm" in raw:
        t = _check(raw["tflm"], _TFLM, path, "tflm")
        tflm = TflmLibrary(t["library"], t["version"], t["date"], t["source"], t["include"],
                           t["per_channel_fully_connected"], frozenset(t["ops"]), t.get("tree", ""))
        if tflm.tree and raw["build"] != "make":
            raise BoardError(f"{path}: field [tflm] 'tree' needs build = \"make\" (PlatformIO boards get TFLM "
                             "from their lib_deps)")
    elif "tflm" in backends:
        raise BoardError(f"{path}: missing field '[tflm]' (the board lists backend tflm)")
    runtime: dict[str, RuntimeEstimate] = {}
    for backend, table in raw["runtime"].items():
        if backend not in BACKENDS:
            raise BoardError(f"{path}: unknown field [runtime] '{backend}' (known: {', '.join(BACKENDS)})")
        if not isinstance(table, dict):
            raise BoardError(f"{path}: field [runtime] '{backend}' must be a table, got {table!r}")
        t = _check(table, _RUNTIME, path, f"runtime.{backend}")
        runtime[backend] = RuntimeEstimate(t["flash"], t["ram"], t["basis"], t.get("weights_in_ram", False),
                                           t.get("const_in_ram", False), t.get("input_in_arena", False),
                                           tuple(t.get("ops", ())), t.get("other_ops_flash", 0), t.get("calls", 0),
                                           t.get("flash_per_call", 0))
    for b in backends:
        if b not in runtime:
            raise BoardError(f"{path}: missing field '[runtime.{b}]' (the board lists backend {b})")
    unsupported = raw.get("unsupported", {})
    for key, value in unsupported.items():
        if key not in BACKENDS or not isinstance(value, str):
            raise BoardError(f"{path}: field [unsupported] '{key}' must name a backend and give a reason string")
    tools = raw.get("tools", {})
    for key, value in tools.items():
        if not isinstance(value, str) or not value:
            raise BoardError(f"{path}: field [tools] '{key}' must name the Debian package that provides it")
    serial = _check(raw["serial"], _SERIAL, path, "serial")
    counter = _check(raw["counter"], _COUNTER, path, "counter")
    return Board(
        id=path.stem, path=path, name=raw["name"], aliases=tuple(raw.get("aliases", [])), mcu=raw["mcu"],
        clock_hz=raw["clock_hz"], flash_bytes=raw["flash_bytes"], ram_bytes=raw["ram_bytes"],
        platform=raw["platform"], build=raw["build"], backends=backends,
        serial=SerialSpec(serial["baud"], tuple(serial["usb_ids"])),
        counter=Counter(counter["name"], counter["unit"], counter["how"]),
        runtime=runtime, platformio=pio, tflm=tflm, unsupported=dict(unsupported), run=dict(raw.get("run", {})),
        tools=dict(tools),
    )


def list_boards(directory: Path | None = None) -> list[Board]:
    """Every board in ``directory`` (default: the shipped ``boards/``), sorted by id."""
    directory = Path(directory) if directory is not None else boards_dir()
    boards = [load_board_file(p) for p in sorted(directory.glob("*.toml"))]
    seen: dict[str, str] = {}
    for b in boards:
        for name in (b.id, *b.aliases):
            if name in seen:
                raise BoardError(f"{b.path}: board name '{name}' is already used by {seen[name]}")
            seen[name] = b.id
    return boards


def load_board(name: str, directory: Path | None = None) -> Board:
    """The board whose id or alias is ``name``.

    Raises:
        BoardError: no such board (the valid ids and aliases are listed), or its file is invalid.
    """
    boards = list_boards(directory)
    for b in boards:
        if name == b.id or name in b.aliases:
            return b
    valid = ", ".join(b.id + (f" ({', '.join(b.aliases)})" if b.aliases else "") for b in boards)
    raise BoardError(f"unknown board '{name}'; valid boards (aliases): {valid}")
