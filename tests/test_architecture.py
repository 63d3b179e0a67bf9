"""The package's import graph: no circles, and imports only run down the floors of docs/architecture.md.

Every ``import`` and ``from ... import`` in ``toolchain/edgedigit`` counts, those inside functions too (a
lazy import is still a dependency), except those under ``if TYPE_CHECKING:`` (annotations only). Run as a
script to print the graph's figures for any tree: ``python tests/test_architecture.py [path/to/edgedigit]``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "toolchain" / "edgedigit"

# Floors, bottom up (docs/architecture.md). A module may import its own package or a lower floor.
FLOORS = {"core": 0, "codegen": 1, "runtimes": 2, "models": 3, "targets": 4, "measure": 5, "report": 6,
          "pipeline": 7, "search": 7, "cli": 8}
# Upward imports that are allowed, each with its reason (importer -> imported).
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root`` (a package folder)."""
    out = {}
    for p in sorted(root.rglob("*.py")):
        if "__pycache__" in p.parts:
            continue
        parts = [root.name, *p.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in the file)."""
    mods = module_names(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        pkg = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = pkg[: len(pkg) - node.level + 1] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{mod}.{alias.name}"
                    targets.append(sub if sub in mods else mod)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def floor(module: str) -> int:
    """The floor of a module: its first package under edgedigit (``edgedigit`` itself is the ground)."""
    parts = module.split(".")
    return FLOORS.get(parts[1], 0) if len(parts) > 1 else 0


def upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a lower floor to a higher one."""
    return sorted((a, b) for a, targets in graph.items() for b in targets if floor(b) > floor(a))


def test_no_import_circles():
    assert cycles(imports(PACKAGE)) == []


def test_imports_only_run_down_the_floors():
    found = upward(imports(PACKAGE))
    assert [e for e in found if e not in ALLOWED_UPWARD] == []


def test_every_package_has_a_floor():
    tops = {m.split(".")[1] for m in module_names(PACKAGE) if m.count(".") >= 1}
    assert tops - set(FLOORS) == set()


def test_contract_constants_match_the_c_header():
    from edgedigit.core import int8

    header = (PACKAGE.parents[1] / "firmware_templates" / "runtime" / "edgedigit_model.h").read_text()
    defines = {ln.split()[1]: ln.split()[2] for ln in header.splitlines() if ln.startswith("#define ") and
               len(ln.split()) > 2}
    assert int(defines["EDGEDIGIT_IMAGE_BYTES"]) == int8.IMAGE_BYTES == 784
    assert int(defines["EDGEDIGIT_MAX_CLASSES"]) == int8.MAX_CLASSES == 16


if __name__ == "__main__":
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else PACKAGE
    g = imports(root)
    print(f"{root}: {len(g)} modules, {sum(len(t) for t in g.values())} import edges")
    circles = cycles(g)
    print(f"circles: {len(circles)}")
    for c in circles:
        print(f"  {len(c)} modules: {', '.join(c)}")
    up = upward(g)
    print(f"upward imports (floors of {PACKAGE.name}): {len(up)}")
    for a, b in up:
        print(f"  {a} -> {b}")
