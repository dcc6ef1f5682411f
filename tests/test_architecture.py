"""Architecture tests: kdlib's imports run one way, and its public functions say what their parameters are.

Both tests read the source with :mod:`ast` and import nothing from kdlib, so they are quick and
cannot be fooled by import order or by what happens to be loaded already.

**Import graph.** A node is a module of ``kdlib/`` (a package is its ``__init__.py``). An edge
``a -> b`` is any import in ``a`` that loads ``b``: top-level, inside a function (a lazy import),
or under ``if TYPE_CHECKING:`` (a type checker still reads it, and a lazy import placed to dodge
a cycle still leaves the cycle in the design). Resolution:

* ``import a.b.c`` and ``from a.b.c import name`` load ``a.b.c``; ``from a.b import c`` loads
  the submodule ``a.b.c`` when ``c`` is one, else the package ``a.b`` (its ``__init__``);
  relative imports (``from . import x``, ``from ..stats import y``) resolve the same way from the
  importing module's package;
* loading a module also runs the ``__init__`` of every package above it, so the edge ``a -> b``
  comes with edges ``a -> p`` for each package ``p`` above ``b`` that is not above ``a`` (those
  are already running when ``a`` runs) and is not ``kdlib`` itself (which imports nothing).

The rule: **the graph has no cycle**, i.e. no module imports (directly or through others) a
module that imports it back. The same holds one level up, between *rooms* (each subpackage of
kdlib, e.g. ``kdlib.data``, counted as one node, and each top-level module): rooms are layered
one way, so ``data`` never imports from ``models`` if anything in ``models`` imports ``data``; and
ARCHITECTURE.md's drawing of that layering (``cli > report, sweep > ...``) names every room and
allows every import between rooms that the code makes. A package's ``__init__`` may re-export its submodules; a submodule
must then import its siblings by their own names (``from .losses import hinton_kd``), never its
package (``from kdlib.distill import ...`` inside ``kdlib/distill/``), which would import its
own ``__init__`` back. The failure message names every cycle with the file:line of each import.

**Parameters sections.** Every public function and method (its name, and its class's name, do
not start with ``_``; nested functions are not API) that takes two or more parameters besides
``self``/``cls`` (``*args``/``**kwargs`` count) has a numpydoc ``Parameters`` section in its
docstring, and every Parameters section names each parameter of its signature and no other
(``a, b : int`` names two). The failures list them as ``file:line name``.

The graph algorithms are networkx's (installed with torch, which requires it).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kdlib"


def module_name(path: Path) -> str:
    """``kdlib/distill/feedback.py`` -> ``kdlib.distill.feedback``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def kdlib_modules() -> dict[str, Path]:
    """Every module under ``kdlib/`` by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@dataclass(frozen=True)
class Import:
    """One import statement's edge: where it is and how it runs."""

    target: str
    line: int
    how: str  # "top", "lazy" (inside a function), "TYPE_CHECKING", "via package __init__"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.Module):
    """Yield ``(node, how)`` for every import statement in ``tree``, at any depth."""
    def walk(node, how):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, how
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from walk(child, "lazy")
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), "TYPE_CHECKING")
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), how)
            else:
                yield from walk(child, how)
    yield from walk(tree, "top")


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool, modules) -> list[str]:
    """The dotted names of the modules that ``node`` (in module ``name``) loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = name if is_package else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def _ancestors(name: str) -> list[str]:
    """``kdlib.distill.losses`` -> ``["kdlib", "kdlib.distill"]``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> nx.DiGraph:
    """kdlib's module import graph; each edge keeps its first import as ``Import`` under ``"at"``."""
    modules = kdlib_modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        own_ancestors = set(_ancestors(name)) | ({name} if is_package else set())
        for node, how in _import_nodes(tree):
            for target in _targets(node, name, is_package, modules):
                if target not in modules:
                    continue  # outside kdlib (or a name that is not a module: already mapped to its package)
                via = "via package __init__" if how == "top" else f"{how}, via package __init__"
                edges = [(target, how)] + [(p, via) for p in _ancestors(target)
                                          if p != "kdlib" and p not in own_ancestors]
                for dst, kind in edges:
                    if dst != name and not graph.has_edge(name, dst):
                        graph.add_edge(name, dst, at=Import(dst, node.lineno, kind))
    return graph


def describe_cycle(graph: nx.DiGraph, cycle: list[str]) -> str:
    """``a -> b (a.py:12) -> a (b.py:40, lazy)``: the cycle with the file:line and kind of each import."""
    modules = kdlib_modules()
    steps = [cycle[0]]
    for src, dst in zip(cycle, cycle[1:] + cycle[:1]):
        at = graph.edges[src, dst]["at"]
        where = f"{modules[src].relative_to(ROOT)}:{at.line}"
        steps.append(f"{dst} ({where}{'' if at.how == 'top' else ', ' + at.how})")
    return " -> ".join(steps)


def import_cycles(graph: nx.DiGraph, limit: int = 40) -> list[str]:
    """The cycles of ``graph``, shortest first (at most ``limit``), each described by :func:`describe_cycle`.

    Every strongly connected component of two or more modules yields its cycles of up to 6 modules,
    or, when it has none that short, one longer cycle: no cycle goes unreported."""
    cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            sub = graph.subgraph(component)
            short = list(nx.simple_cycles(sub, length_bound=6))
            cycles += short or [[src for src, _ in nx.find_cycle(sub)]]
    cycles = sorted((c[c.index(min(c)):] + c[:c.index(min(c))] for c in cycles), key=lambda c: (len(c), c))
    return [describe_cycle(graph, c) for c in cycles[:limit]]


def test_import_graph_resolves_relative_absolute_and_lazy_imports():
    graph = import_graph()
    # the graph is not empty and reaches across packages (a resolver that dropped imports would pass the cycle test)
    assert graph.number_of_edges() > 50
    assert graph.has_edge("kdlib.models", "kdlib.models.blocks")  # from .blocks import ... in an __init__
    assert graph.has_edge("kdlib.models.student", "kdlib.models.blocks")  # relative import in a submodule
    assert graph.edges["kdlib.cli", "kdlib.evaluate"]["at"].how == "lazy"  # an import inside a function


def test_resolution_rules_on_a_small_package(tmp_path, monkeypatch):
    """The resolver on a hand-made package: ``from . import x`` is submodule x, names map to their module,
    ``import a.b.c`` loads a.b.c, and importing a submodule from outside its package runs the package's ``__init__``."""
    files = {
        "kdlib/__init__.py": "",
        "kdlib/a.py": "from . import b\nfrom .pkg.c import f\n",
        "kdlib/b.py": "def g():\n    import kdlib.pkg.d\n",
        "kdlib/pkg/__init__.py": "from .c import f\n",
        "kdlib/pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import x\nfrom . import d\n",
        "kdlib/pkg/d.py": "from kdlib.pkg import c\nfrom kdlib import pkg\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path / "kdlib")
    graph = import_graph()
    kinds = {(s, d): graph.edges[s, d]["at"].how for s, d in graph.edges}
    assert kinds == {
        ("kdlib.a", "kdlib.b"): "top",
        ("kdlib.a", "kdlib.pkg.c"): "top",
        ("kdlib.a", "kdlib.pkg"): "via package __init__",
        ("kdlib.b", "kdlib.pkg.d"): "lazy",
        ("kdlib.b", "kdlib.pkg"): "lazy, via package __init__",
        ("kdlib.pkg", "kdlib.pkg.c"): "top",
        ("kdlib.pkg.c", "kdlib.a"): "TYPE_CHECKING",
        ("kdlib.pkg.c", "kdlib.pkg.d"): "top",
        ("kdlib.pkg.d", "kdlib.pkg.c"): "top",
        ("kdlib.pkg.d", "kdlib.pkg"): "top",
    }
    described = import_cycles(graph)
    assert "kdlib.pkg.c -> kdlib.pkg.d (kdlib/pkg/c.py:4) -> kdlib.pkg.c (kdlib/pkg/d.py:1)" in described
    assert "kdlib.a -> kdlib.pkg.c (kdlib/a.py:2) -> kdlib.a (kdlib/pkg/c.py:3, TYPE_CHECKING)" in described


def test_a_long_cycle_is_reported(tmp_path, monkeypatch):
    """A ring longer than the bound on enumerated cycles is still reported (found as one cycle)."""
    (tmp_path / "kdlib").mkdir()
    (tmp_path / "kdlib" / "__init__.py").write_text("")
    for i in range(8):
        (tmp_path / "kdlib" / f"m{i}.py").write_text(f"def f():\n    from . import m{(i + 1) % 8}\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path / "kdlib")
    (cycle,) = import_cycles(import_graph())
    assert cycle.startswith("kdlib.m0 -> kdlib.m1 (kdlib/m0.py:2, lazy)") and cycle.count(" -> ") == 8


def test_no_import_cycles():
    """No module in kdlib/ imports another that imports it back (directly or through others)."""
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles in kdlib/ (module -> imported module (file:line of the import)):\n" + "\n".join(cycles)


def room_of(module: str) -> str:
    """The room of a module: its subpackage of kdlib, or the top-level module itself."""
    return ".".join(module.split(".")[:2])


def room_graph(graph: nx.DiGraph) -> nx.DiGraph:
    """``graph`` with every subpackage of kdlib (data, models, distill) merged into one node; each edge keeps
    one module-level import behind it under ``"via"``."""
    rooms = nx.DiGraph()
    direct_first = sorted(graph.edges, key=lambda e: ("via" in graph.edges[e]["at"].how, e))
    for src, dst in direct_first:
        a, b = room_of(src), room_of(dst)
        if a != b and not rooms.has_edge(a, b):
            rooms.add_edge(a, b, via=(src, dst, graph.edges[src, dst]["at"]))
    return rooms


def test_rooms_import_one_way():
    """The rooms (subpackages and top-level modules) are layered too: no room imports one that imports it
    back, even when the modules involved differ (``data.a -> models.b`` and ``models.c -> data.d``)."""
    modules = kdlib_modules()
    rooms = room_graph(import_graph())
    problems = []
    for cycle in sorted(nx.simple_cycles(rooms), key=len):
        steps = []
        for a, b in zip(cycle, cycle[1:] + cycle[:1]):
            src, dst, at = rooms.edges[a, b]["via"]
            steps.append(f"{a} -> {b} ({src} imports {dst}, {modules[src].relative_to(ROOT)}:{at.line})")
        problems.append("; ".join(steps))
    assert not problems, "rooms of kdlib/ that import each other:\n" + "\n".join(problems)


def documented_layers(text: str) -> list[list[str]]:
    """The room layering ARCHITECTURE.md draws, left (imports) to right (imported): the indented
    lines made of ``a, b > c > ...`` groups (a line may continue the previous one with ``> ...``)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.startswith("    ") and " > " in ln]
    groups = " ".join(lines).split(">")
    return [[f"kdlib.{name.strip()}" for name in group.split(",") if name.strip()] for group in groups]


def test_architecture_md_draws_the_layers_of_the_import_graph():
    """ARCHITECTURE.md's layering names every room once, and every import between rooms points to the right."""
    layers = documented_layers((ROOT / "ARCHITECTURE.md").read_text())
    level = {room: i for i, group in enumerate(layers) for room in group}
    rooms = room_graph(import_graph())
    actual = set(rooms) - {"kdlib", "kdlib.__main__"}  # the package itself and ``python -m kdlib``
    assert sum(map(len, layers)) == len(level), f"a room drawn twice in ARCHITECTURE.md: {layers}"
    assert set(level) == actual, (f"ARCHITECTURE.md's layers lack {sorted(actual - set(level))} "
                                  f"and name rooms that do not exist: {sorted(set(level) - actual)}")
    wrong = [f"{a} imports {b} ({rooms.edges[a, b]['via'][0]} -> {rooms.edges[a, b]['via'][1]})"
             for a, b in rooms.edges if a in level and b in level and level[a] >= level[b]]
    assert not wrong, "imports that ARCHITECTURE.md's layers do not allow:\n" + "\n".join(sorted(wrong))


def test_documented_layers_are_read_from_the_indented_block():
    text = "Intro with a > sign.\n\n    cli > report, sweep > evaluate\n        > data, io\n\nAfter."
    assert documented_layers(text) == [["kdlib.cli"], ["kdlib.report", "kdlib.sweep"], ["kdlib.evaluate"],
                                       ["kdlib.data", "kdlib.io"]]


def test_room_graph_merges_subpackages():
    graph = nx.DiGraph()
    at = Import("x", 1, "top")
    graph.add_edge("kdlib.data.a", "kdlib.models.b", at=at)
    graph.add_edge("kdlib.models.c", "kdlib.data.d", at=at)
    graph.add_edge("kdlib.models.c", "kdlib.models.b", at=at)
    graph.add_edge("kdlib.train", "kdlib.data.a", at=at)
    rooms = room_graph(graph)
    assert sorted(rooms.edges) == [("kdlib.data", "kdlib.models"), ("kdlib.models", "kdlib.data"),
                                   ("kdlib.train", "kdlib.data")]
    assert list(nx.simple_cycles(rooms)) and not import_cycles(graph)  # a room cycle without a module cycle


# --------------------------------------------------------------------------------------------- numpydoc

_PARAMETERS = re.compile(r"^\s*Parameters\s*\n\s*-{3,}\s*$", re.MULTILINE)


def _n_parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> int:
    args = fn.args
    positional = args.posonlyargs + args.args
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)
    if is_method and not static and positional and positional[0].arg in ("self", "cls"):
        positional = positional[1:]
    return len(positional) + len(args.kwonlyargs) + (args.vararg is not None) + (args.kwarg is not None)


def _public_functions(tree: ast.Module):
    """Yield ``(qualified name, node, is_method)`` for module-level functions and methods of public classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node, False
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item, True


def missing_parameters_sections(paths) -> list[str]:
    """``file:line name`` of every public function in ``paths`` with two or more parameters and no Parameters section."""
    missing = []
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        for name, fn, is_method in _public_functions(tree):
            if _n_parameters(fn, is_method) >= 2 and not _PARAMETERS.search(ast.get_docstring(fn) or ""):
                missing.append(f"{path.relative_to(ROOT)}:{fn.lineno} {name}")
    return missing


def test_parameters_check_sees_missing_and_present_sections(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    source = tmp_path / "m.py"
    source.write_text('''
def documented(a, b):
    """Add.

    Parameters
    ----------
    a, b : int
        The terms.
    """

def undocumented(a, *, b=1):
    """Add, with the parameters in prose only."""

def one(a):
    """One parameter needs no section."""

def _private(a, b):
    pass

class Model:
    def forward(self, x, y):
        """No section."""

    def scale(self, x):
        """Self does not count."""

    @staticmethod
    def pair(x, y):
        pass

class _Hidden:
    def run(self, x, y):
        pass
''')
    assert missing_parameters_sections([source]) == [
        "m.py:11 undocumented", "m.py:21 Model.forward", "m.py:28 Model.pair"]


def documented_parameters(doc: str) -> set[str]:
    """The names a numpydoc docstring's Parameters section lists (``a, b : int`` names two; ``*args`` is ``args``)."""
    lines = doc.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}:
            break
    else:
        return set()
    names = set()
    body = lines[i + 2:]
    for k, line in enumerate(body):
        if k + 1 < len(body) and body[k + 1].strip() and set(body[k + 1].strip()) == {"-"}:
            break  # the next section's title
        if line and not line[0].isspace():
            names |= {n.strip().lstrip("*") for n in line.split(" : ")[0].split(",") if n.strip()}
    return names


def _signature(fn: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> list[str]:
    args = fn.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)
    if is_method and not static and names and names[0] in ("self", "cls"):
        names = names[1:]
    return names + [a.arg for a in (args.vararg, args.kwarg) if a is not None]


def incomplete_parameters_sections(paths) -> list[str]:
    """``file:line name: ...`` of every public function whose Parameters section leaves out a parameter or
    names one the signature does not have."""
    problems = []
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        for name, fn, is_method in _public_functions(tree):
            documented = documented_parameters(ast.get_docstring(fn) or "")
            if not documented:
                continue  # no section: test_public_functions_have_parameters_sections decides if one is due
            signature = _signature(fn, is_method)
            missing = [n for n in signature if n not in documented]
            unknown = sorted(documented - set(signature))
            if missing or unknown:
                problems.append(f"{path.relative_to(ROOT)}:{fn.lineno} {name}: not described {missing}"
                                + (f", not a parameter {unknown}" if unknown else ""))
    return problems


def test_documented_parameters_are_read_like_numpydoc():
    doc = """Add.

Parameters
----------
a, b : int
    The terms.
    indented: not a name
*args
scale : float, optional

Returns
-------
c : int
"""
    assert documented_parameters(doc) == {"a", "b", "args", "scale"}
    assert documented_parameters("No section.") == set()


def test_parameters_sections_name_every_parameter():
    problems = incomplete_parameters_sections(sorted(PACKAGE.rglob("*.py")))
    assert not problems, "Parameters sections that do not match the signature:\n" + "\n".join(problems)


def test_public_functions_have_parameters_sections():
    missing = missing_parameters_sections(sorted(PACKAGE.rglob("*.py")))
    assert not missing, (f"{len(missing)} public functions with two or more parameters lack a numpydoc "
                         "Parameters section:\n" + "\n".join(missing))
