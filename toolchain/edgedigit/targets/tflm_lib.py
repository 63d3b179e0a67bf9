"""TFLM compiled from a source tree, once per (library, kernels, compiler, flags), into the build cache.

No package registry ships TensorFlow Lite Micro's C++ sources, so the boards that build with make
(``qemu-m4``, ``host``) compile it from a source tree on this machine:

- the tree: ``$EDGEDIGIT_TFLM_SRC``, else the board file's ``[tflm] tree`` (relative to the repository root;
  ``../shared/third_party/tflite-micro``, the newest TFLM with CMSIS-NN). Three layouts are known:
  ``tflite-micro`` (a standalone TFLM tree, as TFLM's ``create_tflm_tree`` writes it), ``arduino``
  (``Arduino_TensorFlowLite``, the library ``nano33ble`` pins) and ``esp-tflite-micro`` (the ESP32 boards'
  library; its ESP-NN kernels come from ``$EDGEDIGIT_ESP_NN_SRC`` or the ``esp-nn`` folder beside it);
- the kernels: ``cmsis-nn`` (Arm's CMSIS-NN, the default on Cortex-M), ``reference`` (TFLM's portable
  kernels) or ``esp-nn`` (ESP-NN's ANSI-C kernels);
- the toolchain: ``cortex-m4`` (arm-none-eabi-gcc, TFLM's cortex_m_generic release flags) or ``host``.

The library is compiled once into ``<build>/cache/tflm/<key>/libtflm.a`` (or under
``$EDGEDIGIT_TFLM_CACHE``), where the key hashes what makes the library: the tree's path and COMMIT file,
the kernels, the compilers and their versions, the flags and the source list. The recipe is a makefile
(:func:`makefile`, rendered from ``firmware_templates/tflm_lib/tflm.mk.j2``) that an exported project
includes as ``tflm.mk``: ``make`` in the project builds the library when its key has no library yet and
reuses it otherwise. :func:`build` runs the same makefile without a project (tests, benchmarks).

Facts the backend needs before exporting (which builtin operators the tree's ``MicroMutableOpResolver``
registers, whether its FULLY_CONNECTED handles per-channel weights) are read from the tree itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ..core.errors import BoardError, ToolError
from ..core.paths import build_dir, repo_root, templates_dir

ENV_SRC = "EDGEDIGIT_TFLM_SRC"
ENV_ESP_NN = "EDGEDIGIT_ESP_NN_SRC"
ENV_CACHE = "EDGEDIGIT_TFLM_CACHE"
LIBRARY = "libtflm.a"
# Bump when the recipe changes in a way the key does not see (it sees flags and the source list).
RECIPE_VERSION = 1

KERNELS = ("cmsis-nn", "reference", "esp-nn")
_KERNEL_DIR = {"cmsis-nn": "cmsis_nn", "esp-nn": "esp_nn"}  # kernels/<dir>/ replaces the reference files


# ---- the source tree ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tree:
    """A TFLM source tree and what it offers."""

    root: Path  # the folder given (resolved)
    layout: str  # "tflite-micro", "arduino" or "esp-tflite-micro"
    base: Path  # the folder holding tensorflow/ (root, or root/src for Arduino)
    commit: str  # the COMMIT file's text ("" when the tree has none)
    kernels: tuple[str, ...]  # kernel sets it can build, default first
    methods: frozenset[str] = field(repr=False)  # MicroMutableOpResolver Add* methods
    per_channel_fully_connected: bool = False
    esp_nn: Path | None = None  # the ESP-NN tree (esp-tflite-micro only)

    @property
    def name(self) -> str:
        """e.g. ``tflite-micro @ 90b983c`` (the COMMIT file's first word that looks like a commit)."""
        m = re.search(r"\b[0-9a-f]{40}\b", self.commit)
        return f"{self.layout} @ {m.group(0)[:7]}" if m else f"{self.layout} ({self.root})"

    def provides(self, op: str) -> bool:
        """Whether the tree's op resolver can register builtin ``op`` (e.g. ``CONV_2D``)."""
        from ..codegen.tflm import add_method

        return add_method(op) in self.methods


def default_tree_path(board_tree: str | None = None) -> Path | None:
    """The tree to build: ``$EDGEDIGIT_TFLM_SRC``, else ``board_tree`` relative to the repository root."""
    env = os.environ.get(ENV_SRC)
    if env:
        return Path(env)
    if board_tree:
        return repo_root() / board_tree
    return None


def _layout(root: Path) -> tuple[str, Path] | None:
    if (root / "src" / "tensorflow" / "lite" / "micro").is_dir() and (root / "library.properties").is_file():
        return "arduino", root / "src"
    if not (root / "tensorflow" / "lite" / "micro").is_dir():
        return None
    if (root / "tensorflow" / "lite" / "micro" / "kernels" / "esp_nn").is_dir():
        return "esp-tflite-micro", root
    return "tflite-micro", root


def _esp_nn_path(root: Path) -> Path | None:
    env = os.environ.get(ENV_ESP_NN)
    cand = Path(env) if env else root.parent / "esp-nn"
    return cand.resolve() if (cand / "include" / "esp_nn.h").is_file() else None


@cache
def _inspect(root: Path) -> Tree:
    found = _layout(root)
    if found is None:
        raise BoardError(f"{root}: not a TFLM source tree (no tensorflow/lite/micro; set {ENV_SRC} to a checkout "
                         "of tflite-micro, Arduino_TensorFlowLite or esp-tflite-micro)")
    layout, base = found
    micro = base / "tensorflow" / "lite" / "micro"
    resolver = micro / "micro_mutable_op_resolver.h"
    try:
        methods = frozenset(re.findall(r"TfLiteStatus\s+(Add\w+)\s*\(", resolver.read_text(errors="replace")))
    except OSError as e:
        raise BoardError(f"{resolver}: cannot read the op resolver of the TFLM tree ({e})") from None
    fc = micro / "kernels" / "fully_connected.h"
    per_channel = fc.is_file() and "is_per_channel" in fc.read_text(errors="replace")
    commit_file = root / "COMMIT"
    commit = commit_file.read_text(errors="replace").strip() if commit_file.is_file() else ""
    esp_nn = None
    if layout == "arduino":
        kernels: tuple[str, ...] = ("cmsis-nn",)  # the library ships only the CMSIS-NN versions of those kernels
    elif layout == "esp-tflite-micro":
        esp_nn = _esp_nn_path(root)
        kernels = ("esp-nn", "reference") if esp_nn is not None else ("reference",)
    else:
        kernels = ("cmsis-nn", "reference") if (base / "third_party" / "cmsis_nn" / "Source").is_dir() \
            else ("reference",)
    return Tree(root, layout, base, commit, kernels, methods, per_channel, esp_nn)


def inspect(path: Path) -> Tree:
    """The tree at ``path``: its layout, commit, kernel sets and op facts.

    Raises:
        BoardError: ``path`` is not a TFLM source tree (the path named, and how to point at one).
    """
    return _inspect(Path(path).resolve())


# ---- the toolchain ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Toolchain:
    """Compilers and flags of one target; the library and the runner that links it share ``defines``."""

    name: str
    cc: str
    cxx: str
    ar: str
    common: tuple[str, ...]  # C and C++
    cflags: tuple[str, ...]
    cxxflags: tuple[str, ...]
    kernels: tuple[str, ...]  # kernel sets this target can compile, preferred first

    def version(self) -> str:
        """``<cxx> -dumpfullversion`` (part of the cache key), or "unknown" when the compiler is missing."""
        return _compiler_version(self.cxx)


@cache
def _compiler_version(cxx: str) -> str:
    exe = shutil.which(cxx)
    if exe is None:
        return "unknown"
    proc = subprocess.run([exe, "-dumpfullversion"], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


# TFLM's cortex_m_generic release flags (tensorflow/lite/micro/tools/make/targets/cortex_m_generic_makefile.inc)
_M4_ARCH = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
TOOLCHAINS = {
    "cortex-m4": Toolchain(
        "cortex-m4", "arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ar",
        (*_M4_ARCH, "-O2", "-ffunction-sections", "-fdata-sections", "-fno-unwind-tables", "-fomit-frame-pointer",
         "-fsigned-char", "-w"),
        ("-std=c11",), ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"),
        ("cmsis-nn", "reference", "esp-nn")),
    "host": Toolchain(
        "host", "cc", "c++", "ar", ("-O2", "-ffunction-sections", "-fdata-sections", "-w"),
        ("-std=c11",), ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"),
        ("reference", "esp-nn")),
}
# board platform -> toolchain
PLATFORM_TOOLCHAIN = {"qemu-m4": "cortex-m4", "host": "host"}
# Defines the library and every file including its headers must agree on (TfLiteTensor's layout depends on
# TF_LITE_STATIC_MEMORY; the kernel registrations on CMSIS_NN / ESP_NN / ARDUINO).
BASE_DEFINES = ("-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_STRIP_ERROR_STRINGS", "-DNDEBUG")
_KERNEL_DEFINES = {"cmsis-nn": ("-DCMSIS_NN",), "esp-nn": ("-DESP_NN",), "reference": ()}
_LAYOUT_DEFINES = {"arduino": ("-DARDUINO",), "tflite-micro": (), "esp-tflite-micro": ()}


def toolchain_for(platform: str) -> Toolchain:
    """The toolchain of a board platform (``qemu-m4``, ``host``).

    Raises:
        BoardError: a platform whose firmware does not build TFLM from sources here.
    """
    if platform not in PLATFORM_TOOLCHAIN:
        raise BoardError(f"platform {platform} does not build TFLM from a source tree (only "
                         f"{', '.join(PLATFORM_TOOLCHAIN)} do)")
    return TOOLCHAINS[PLATFORM_TOOLCHAIN[platform]]


def default_kernels(tree: Tree, toolchain: Toolchain) -> str | None:
    """The tree's first kernel set the toolchain compiles (cmsis-nn on Cortex-M), None when there is none."""
    return next((k for k in tree.kernels if k in toolchain.kernels), None)


def check_kernels(tree: Tree, toolchain: Toolchain, kernels: str | None) -> str:
    """``kernels`` (default: :func:`default_kernels`) checked against the tree and the toolchain.

    Raises:
        BoardError: unknown kernels, or kernels this tree or toolchain cannot build (the ones it can named).
    """
    possible = [k for k in tree.kernels if k in toolchain.kernels]
    if kernels is None:
        if not possible:
            raise BoardError(f"{tree.root}: {tree.layout} offers kernels {', '.join(tree.kernels)}, none of which "
                             f"builds for {toolchain.name}")
        return possible[0]
    if kernels not in KERNELS:
        raise BoardError(f"unknown TFLM kernels '{kernels}' (known: {', '.join(KERNELS)})")
    if kernels not in possible:
        raise BoardError(f"{tree.root}: kernels {kernels} cannot be built for {toolchain.name} from this "
                         f"{tree.layout} tree (possible: {', '.join(possible) or 'none'})")
    return kernels


# ---- sources and flags -----------------------------------------------------------------------------------

# Never part of the library: tests and their helpers, other platforms' glue, the audio front end. (A tree's
# micro/<platform>/ folders hold boards' own debug_log/micro_time, e.g. esp/micro_time.cc needs ESP-IDF's
# timer: the generic ones in micro/ stay; the runner uses neither.)
_SKIP = re.compile(r"(_test\b|_test\.|/test_|test_helper|fake_micro_context|mock_micro_graph|kernel_runner|"
                   r"conv_test_common|/testing/|/examples/|/tools/|/python/|/benchmarks?/|experimental/microfrontend|"
                   r"/micro/(?!kernels/|arena_allocator/|memory_planner/|tflite_bridge/)[^/]+/)")
_DEFINES_REGISTRATION = re.compile(r"^\s*(?:TFLMRegistration|TfLiteRegistration)\s*\*?\s*Register_(\w+)\s*\(\s*\)\s*\{",
                                   re.M)
_ADD_METHOD = re.compile(r"TfLiteStatus\s+Add\w+\s*\(")


def _ext(tree: Tree) -> str:
    return ".cpp" if tree.layout == "arduino" else ".cc"


@cache
def _op_registrations(tree: Tree) -> dict[str, frozenset[str]]:
    """Builtin op -> the ``Register_*`` functions its ``MicroMutableOpResolver`` method names (by default or
    in its body), read from the tree's resolver header: ``CONV_2D`` -> {``CONV_2D``}, ``L2_NORMALIZATION`` ->
    {``L2_NORMALIZATION``} or {``L2NORM_REF``} depending on the TFLM version."""
    text = (tree.base / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h").read_text(errors="replace")
    starts = [m.start() for m in _ADD_METHOD.finditer(text)] + [len(text)]
    out: dict[str, set[str]] = {}
    for a, b in zip(starts, starts[1:], strict=False):
        chunk = text[a:b]
        op = re.search(r"BuiltinOperator_(\w+)", chunk)
        if op is not None and op.group(1) != "CUSTOM":
            out.setdefault(op.group(1), set()).update(re.findall(r"Register_(\w+)\s*\(", chunk))
    return {op: frozenset(regs) for op, regs in out.items()}


@dataclass(frozen=True)
class Sources:
    """A tree's sources for one kernel set: what every build compiles, and the kernels by what they register."""

    core: tuple[str, ...]  # interpreter, allocator, schema, helpers (relative to tree.base)
    kernels: tuple[tuple[str, frozenset[str]], ...]  # (kernel file, Register_* names it defines)
    c: tuple[tuple[str, str], ...]  # (root variable, path): CMSIS-NN / ESP-NN C kernels, all of them
    shim: tuple[str, ...]  # edgedigit's glue (relative to firmware_templates/tflm_lib)


@cache
def _sources(tree: Tree, kernels: str) -> Sources:
    """Every source of ``tree`` for ``kernels``: kernel files that register operators are kept apart, so a
    build compiles only those of the operators it needs (the linker would keep no others anyway)."""
    ext = _ext(tree)
    opt = _KERNEL_DIR.get(kernels)
    kdir = tree.base / "tensorflow" / "lite" / "micro" / "kernels"
    replaced = {p.stem for p in (kdir / opt).glob(f"*{ext}")} if opt is not None else set()
    core, kern = [], []
    for p in sorted((tree.base / "tensorflow").rglob(f"*{ext}")):
        rel = p.relative_to(tree.base).as_posix()
        if _SKIP.search("/" + rel):
            continue
        if p.parent.parent == kdir:  # kernels/<vendor>/: only the chosen set's folder
            if p.parent.name != opt:
                continue
        elif p.parent == kdir and p.stem in replaced:
            continue
        elif kdir in p.parents and p.parent != kdir:
            continue
        if kdir in p.parents:
            names = frozenset(_DEFINES_REGISTRATION.findall(p.read_text(errors="replace")))
            if names:
                kern.append((rel, names))
                continue
        core.append(rel)
    return Sources(tuple(core), tuple(kern), tuple(_c_sources(tree, kernels)), tuple(_shim_sources(tree)))


def _c_sources(tree: Tree, kernels: str) -> list[tuple[str, str]]:
    """C sources as (root variable, path relative to it): CMSIS-NN or ESP-NN's ANSI-C kernels."""
    if kernels == "cmsis-nn":
        src = tree.base / "third_party" / "cmsis_nn" / "Source"
        return [("TFLM_SRC", p.relative_to(tree.base).as_posix()) for p in sorted(src.rglob("*.c"))
                if not re.search(r"_f(16|32)\.c$", p.name)]  # float kernels: not used by int8 models
    if kernels == "esp-nn" and tree.esp_nn is not None:
        return [("TFLM_ESP_NN", p.relative_to(tree.esp_nn).as_posix()) for p in sorted((tree.esp_nn / "src").rglob("*.c"))
                if p.name.endswith(("_ansi.c", "_opt.c")) and "esp32" not in p.name]
    return []


def _includes(tree: Tree, kernels: str) -> list[str]:
    """-isystem flags (system: TFLM's headers must not trip the project's -Wall -Wextra -Werror)."""
    b = tree.base
    dirs = [b, b / "third_party" / "flatbuffers" / "include", b / "third_party" / "gemmlowp", b / "third_party" / "ruy"]
    if kernels == "cmsis-nn" and tree.layout != "arduino":
        dirs += [b / "third_party" / "cmsis_nn", b / "third_party" / "cmsis_nn" / "Include",
                 b / "third_party" / "cmsis" / "CMSIS" / "Core" / "Include"]
    resolver = (b / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h").read_text(errors="replace")
    if "signal/micro/kernels/" in resolver and not (b / "signal").is_dir():
        dirs.append(templates_dir() / "tflm_lib" / "signal_shim")  # a tree shipped without its signal/ library
    if tree.layout == "esp-tflite-micro":
        dirs += [b / "third_party" / "kissfft", templates_dir() / "tflm_lib" / "esp_shim"]
        if kernels == "esp-nn" and tree.esp_nn is not None:
            dirs += [tree.esp_nn / "include", tree.esp_nn / "src" / "common"]
    return [arg for d in dirs if d.is_dir() for arg in ("-isystem", str(d))]


def _shim_sources(tree: Tree) -> list[str]:
    """edgedigit's own glue a tree needs on these targets (``firmware_templates/tflm_lib/``)."""
    if tree.layout == "arduino":
        return ["arduino_debug_log.cc"]  # its DebugLog lives in system_setup.cpp, which needs Arduino.h
    if tree.layout == "esp-tflite-micro":
        return ["esp_shim/esp_timer.c"]  # the ESP-NN kernels time themselves with esp_timer_get_time()
    return []


@dataclass(frozen=True)
class Library:
    """One TFLM build: its cache folder, its sources and the flags a runner must share with it.

    Every object is compiled once per key into ``<directory>/obj/``; an archive holds the core and the
    kernels of a set of operators (:meth:`archive`): the whole library, or just a model's operators, which
    links into the same firmware (the linker takes nothing else from the archive).
    """

    tree: Tree
    kernels: str
    toolchain: Toolchain
    key: str
    directory: Path  # the cache folder: obj/, libtflm*.a, tflm.mk
    sources: Sources = field(repr=False)
    defines: tuple[str, ...]
    includes: tuple[str, ...]

    @property
    def cppflags(self) -> tuple[str, ...]:
        """What a file including TFLM's headers is compiled with: the shared defines and include paths."""
        return (*self.defines, *self.includes)

    def kernel_files(self, ops: frozenset[str] | None = None) -> list[str]:
        """The kernel files that register ``ops`` (every builtin op by default), in source order.

        Raises:
            BoardError: an op the tree's resolver does not offer, or whose registration no source defines.
        """
        if ops is None:
            return [rel for rel, _ in self.sources.kernels]
        regs = _op_registrations(self.tree)
        want: set[str] = set()
        for op in sorted(ops):
            if op not in regs:
                raise BoardError(f"{self.tree.root}: the TFLM tree's op resolver has no builtin {op}")
            want |= regs[op] | {f"{r}_INT8" for r in regs[op]}  # the runner registers int8-only variants
        files = [rel for rel, names in self.sources.kernels if names & want]
        missing = sorted(r for op in ops for r in regs[op] if not any(r in n for _, n in self.sources.kernels))
        if missing:
            raise BoardError(f"{self.tree.root}: no {self.kernels} kernel source defines Register_{missing[0]}()")
        return files

    def archive(self, ops: frozenset[str] | None = None) -> Path:
        """The archive for ``ops``: ``libtflm.a`` (every kernel) or ``libtflm-<hash>.a`` (these ops' kernels)."""
        if ops is None:
            return self.directory / LIBRARY
        tag = hashlib.sha256("\n".join(sorted(ops)).encode()).hexdigest()[:8]
        return self.directory / f"libtflm-{tag}.a"

    def describe(self) -> dict[str, object]:
        """What the lock file and the results record about the library."""
        return {"tree": str(self.tree.root), "layout": self.tree.layout, "commit": self.tree.commit,
                "name": self.tree.name, "kernels": self.kernels, "toolchain": self.toolchain.name,
                "compiler": f"{self.toolchain.cxx} {self.toolchain.version()}", "key": self.key}


def cache_root() -> Path:
    """``$EDGEDIGIT_TFLM_CACHE``, else ``<build>/cache/tflm``."""
    env = os.environ.get(ENV_CACHE)
    return Path(env) if env else build_dir() / "cache" / "tflm"


def _portable(include: Path) -> str:
    """An include folder as the key sees it: folders this project ships by their path inside it (so every
    checkout of the same commit shares one cache), the rest (the TFLM tree) by their absolute path."""
    try:
        return f"<templates>/{Path(include).relative_to(templates_dir()).as_posix()}"
    except ValueError:
        return str(include)


def _shipped_digest(includes: tuple) -> str:
    """sha256 over the files of the include folders this project ships (their content is in the key)."""
    h = hashlib.sha256()
    for inc in includes:
        if _portable(inc).startswith("<templates>/"):
            for f in sorted(p for p in Path(inc).rglob("*") if p.is_file()):
                h.update(f.relative_to(templates_dir()).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def library(tree: Tree, kernels: str | None, toolchain: Toolchain) -> Library:
    """The library for (tree, kernels, toolchain): its key, cache folder, sources and flags (nothing built).

    Raises:
        BoardError: kernels this tree or toolchain cannot build.
    """
    kernels = check_kernels(tree, toolchain, kernels)
    sources = _sources(tree, kernels)
    defines = (*BASE_DEFINES, *_KERNEL_DEFINES[kernels], *_LAYOUT_DEFINES[tree.layout])
    includes = tuple(_includes(tree, kernels))
    identity = {
        "recipe": RECIPE_VERSION, "tree": str(tree.root), "commit": tree.commit, "layout": tree.layout,
        "esp_nn": str(tree.esp_nn) if kernels == "esp-nn" else None, "kernels": kernels,
        "toolchain": toolchain.name, "cc": toolchain.cc, "cxx": toolchain.cxx, "ar": toolchain.ar,
        "version": toolchain.version(),
        "flags": [*toolchain.common, *toolchain.cflags, *toolchain.cxxflags, *defines, *map(_portable, includes)],
        "shipped": _shipped_digest(includes),
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return Library(tree, kernels, toolchain, key, cache_root() / key, sources, defines, includes)


def for_board(board: object, kernels: str | None = None) -> Library:
    """The library a make-built board (``qemu-m4``, ``host``) links: its tree, the kernels, its toolchain.

    Raises:
        BoardError: the board does not build TFLM from sources, no tree is found (where it was looked
            for, and the variable that points at one), or the kernels cannot be built here.
    """
    lib = getattr(board, "tflm", None)
    tree_field = getattr(lib, "tree", "") if lib is not None else ""
    if not tree_field:
        raise BoardError(f"board {board.id} does not build TFLM from a source tree (no [tflm] tree in {board.path})")
    path = default_tree_path(tree_field)
    if path is None or not path.exists():
        raise BoardError(f"no TFLM source tree at {path}: set {ENV_SRC} to a checkout of tflite-micro (or "
                         f"Arduino_TensorFlowLite, esp-tflite-micro) to build the tflm backend for {board.id}")
    return library(inspect(path), kernels, toolchain_for(board.platform))


def makefile(lib: Library, ops: frozenset[str] | None = None) -> str:
    """``tflm.mk``: the recipe that builds ``lib``'s archive for ``ops`` (default: every kernel) from objects
    compiled once into its cache folder; a project's Makefile includes it."""
    from ..codegen.render import render

    src = lib.sources
    objects = [_obj("TFLM_SRC", s) for s in (*src.core, *lib.kernel_files(ops))]
    objects += [_obj(r, p) for r, p in src.c] + [_obj("TFLM_SHIM", s) for s in src.shim]
    return render("tflm_lib/tflm.mk.j2", lib=lib, tc=lib.toolchain, describe=lib.describe(),
                  archive=lib.archive(ops), ops=sorted(ops) if ops is not None else None,
                  shim_dir=str(templates_dir() / "tflm_lib"), objects=objects)


def _obj(root: str, rel: str) -> str:
    name = {"TFLM_SRC": "tflm", "TFLM_ESP_NN": "esp-nn", "TFLM_SHIM": "shim"}[root]
    return f"$(TFLM_DIR)/obj/{name}/{Path(rel).with_suffix('.o').as_posix()}"


def build(lib: Library, ops: frozenset[str] | None = None, jobs: int | None = None, timeout: float = 3600.0) -> Path:
    """Build ``lib``'s archive for ``ops`` (default: every kernel) unless it is there already; returns it.

    Raises:
        ToolError: make or the compilers are missing, the build failed (its last lines quoted) or hung.
    """
    archive = lib.archive(ops)
    if archive.is_file():
        return archive
    for tool in ("make", lib.toolchain.cc, lib.toolchain.cxx, lib.toolchain.ar):
        if shutil.which(tool) is None:
            raise ToolError(f"{tool} is not installed (needed to build TFLM for {lib.toolchain.name}); Debian: "
                            f"apt-get install {'gcc-arm-none-eabi' if 'arm' in tool else 'build-essential'}")
    lib.directory.mkdir(parents=True, exist_ok=True)
    mk = lib.directory / f"{archive.stem}.mk"
    tmp = mk.with_name(f".{mk.name}.{os.getpid()}")
    tmp.write_text(makefile(lib, ops))
    os.replace(tmp, mk)
    cmd = ["make", "-f", str(mk), f"-j{jobs or os.cpu_count() or 1}", "tflm-lib"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=lib.directory)
    except subprocess.TimeoutExpired:
        raise ToolError(f"building TFLM in {lib.directory} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0 or not archive.is_file():
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        raise ToolError(f"building TFLM ({lib.tree.name}, {lib.kernels}, {lib.toolchain.name}) failed in "
                        f"{lib.directory} (exit {proc.returncode}): {tail}")
    return archive
