"""No import cycles between the modules of bake/, player/ and formats/.

The imports are read with ``ast``, not by importing: every ``import`` and ``from ... import``
anywhere in a module counts, a function's too (an import moved into a function to dodge a cycle
is still a cycle, only deferred). ``from pkg import name`` points at ``pkg.name`` when that is a
module, else at ``pkg``. Importing a submodule also runs its package's ``__init__``, but that is
not counted as an edge: a package that re-exports its submodules would otherwise always close a
loop with them, though Python loads it fine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bake", "player", "formats")


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the given top-level packages of ``root``."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` (at ``path``) imports."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(_known(alias.name, modules))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else _known(base, modules))
    found.discard(None)
    found.discard(name)
    return found


def _known(dotted: str, modules: dict[str, Path]) -> str | None:
    """``dotted`` or its nearest enclosing module that is one of ours (``import a.b.c`` loads a.b.c)."""
    parts = dotted.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed path a -> ... -> a) per strongly connected component that has one."""
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = [0]

    def strongconnect(v: str) -> None:  # Tarjan; recursion depth is the package's import depth
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(set(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    cycles = []
    for comp in sccs:
        if len(comp) < 2:
            continue
        cycles.append(_path_in(graph, comp))
    return sorted(cycles)


def _path_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest closed path from the smallest-named module of a strongly connected set back to it."""
    start = min(comp)
    prev: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, set()) & comp):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return path[::-1] + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError("a strongly connected set always closes a loop")


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    modules = module_files(root, packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_no_import_cycles_in_bake_player_formats():
    graph = import_graph(REPO, PACKAGES)
    assert len(graph) > 40 and "bake.fields.registry" in graph  # the walk did see the tree
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_walk_sees_function_level_and_relative_imports(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "def f():\n    from pkg.b import g\n",
        "pkg/b.py": "from . import c\n",
        "pkg/c.py": "from .sub import d\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/d.py": "from .. import a  # relative, two levels\n",
    })
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.sub.d"} and graph["pkg.sub.d"] == {"pkg.a"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.sub.d", "pkg.a"]]


@pytest.mark.parametrize("files, cycle", [
    # The shape this test exists for: a loader that imports a plugin inside a function, a plugin
    # that imports the loader's module at the top.
    ({"pkg/__init__.py": "", "pkg/field.py": "def load():\n    from pkg.nerf import Nerf\n",
      "pkg/nerf.py": "from pkg.field import Base\n"}, ["pkg.field", "pkg.nerf", "pkg.field"]),
    ({"pkg/__init__.py": "", "pkg/x.py": "import pkg.y\n", "pkg/y.py": "import pkg.x\n"},
     ["pkg.x", "pkg.y", "pkg.x"]),
])
def test_a_cycle_is_found_and_named(tmp_path, files, cycle):
    _write(tmp_path, files)
    assert find_cycles(import_graph(tmp_path, ("pkg",))) == [cycle]


def test_no_cycle_no_report(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": "from pkg.a import f\n", "pkg/a.py": "import os\nimport pkg.b\n",
                      "pkg/b.py": "from pkg import c\n", "pkg/c.py": ""})
    assert find_cycles(import_graph(tmp_path, ("pkg",))) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_every_package_folder_has_an_init():
    # A folder of modules without __init__.py imports fine from the checkout (a namespace
    # package) but is left out of a regular install (setuptools' find_packages skips it).
    missing = sorted(str(d.relative_to(REPO)) for pkg in PACKAGES for d in [REPO / pkg, *(REPO / pkg).rglob("*")]
                     if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
                     and not (d / "__init__.py").is_file())
    assert not missing, f"package folders without __init__.py: {missing}"
