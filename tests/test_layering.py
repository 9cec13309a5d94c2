"""The engine's module graph: one acyclic stack of layers (docs/architecture.md).

Reads every module of ``core/aerialseg`` with ``ast``, imports inside functions included, and checks that
each import of another aerialseg module goes down the stack or stays within a layer, that there is no
cycle, that no module uses another's private names, that only the command line imports it, and that only
the command line parses arguments (``argparse``) or prints. The
command line is a package: ``cli`` (its ``__init__``) and ``cli.<command>``, all in the top layer, each a
module of its own for the cycle and private-name checks.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "core" / "aerialseg"

# Bottom to top. A module may import modules of its own layer or of the layers below.
LAYERS: list[tuple[str, set[str]]] = [
    ("leaves", {"errors", "_version", "card", "options", "tiling", "metrics", "presets", "style", "scratch",
                "download"}),
    ("edges and runtimes", {"raster", "runtime", "nets", "checkup", "datasets", "splits"}),
    ("inference core", {"inference", "choose"}),
    ("cluster backend", {"cluster"}),
    ("stages", {"predict", "vectorize", "evaluate", "losses", "optimizers", "trainconfig", "training_io", "train",
                 "export"}),
    ("orchestration", {"mosaic", "combine", "pipeline"}),
    ("package", {"__init__"}),
    ("command line", {"cli", "__main__"}),  # cli: the package aerialseg.cli, every module in it
]
LAYER_OF = {module: i for i, (_, modules) in enumerate(LAYERS) for module in modules}
COMMAND_LINE = LAYER_OF["cli"]


def _layer(module: str) -> int | None:
    """The layer of a module (``cli.map``: the layer of its package)."""
    return LAYER_OF.get(module.split(".")[0])


def _modules() -> dict[str, ast.Module]:
    """Every module by name: ``predict``, and ``cli`` / ``cli.map`` for the command-line package."""
    paths = sorted(PACKAGE.glob("*.py")) + sorted(PACKAGE.glob("*/*.py"))
    return {_module_name(path): ast.parse(path.read_text(), str(path)) for path in paths}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _resolve(dotted: str, known: set[str]) -> str:
    """The module an import of ``aerialseg.<dotted>`` loads: the longest known prefix (``cli.map.x`` -> ``cli.map``)."""
    parts = dotted.split(".")
    while len(parts) > 1 and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imports(tree: ast.Module, known: set[str]) -> list[tuple[str, list[str], int]]:
    """(aerialseg module, names imported from it, line) for every import in ``tree``, nested ones included."""
    found: list[tuple[str, list[str], int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(_resolve(a.name.removeprefix("aerialseg."), known), [], node.lineno) for a in node.names
                      if a.name.startswith("aerialseg.")]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names = [a.name for a in node.names]
            if node.module == "aerialseg":  # from aerialseg import style: the submodule (else the package)
                found += [(n, [], node.lineno) if n in known else ("__init__", [n], node.lineno) for n in names]
            elif node.module.startswith("aerialseg."):
                package = _resolve(node.module.removeprefix("aerialseg."), known)
                inner = [n for n in names if f"{package}.{n}" in known]  # from aerialseg.cli import map
                found += [(f"{package}.{n}", [], node.lineno) for n in inner]
                rest = [n for n in names if n not in inner]
                if rest or not inner:
                    found.append((package, rest, node.lineno))
    return found


def _module_aliases(tree: ast.Module, known: set[str]) -> set[str]:
    """Local names bound to aerialseg modules (``from aerialseg import style``, ``import aerialseg.x as y``)."""
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None and node.module.startswith("aerialseg"):
            package = node.module.removeprefix("aerialseg").removeprefix(".")
            aliases |= {a.asname or a.name for a in node.names
                        if (f"{package}.{a.name}" if package else a.name) in known}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.asname and a.name.startswith("aerialseg.")}
    return aliases


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: {m for m, _, _ in _imports(tree, known) if m != name} for name, tree in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_every_module_has_a_layer():
    assert sorted(m for m in _modules() if _layer(m) is None) == []


def test_no_import_cycle():
    assert _cycle(_graph()) is None


def test_imports_go_down_the_stack():
    layer = {module: _layer(module) for module in _modules()}
    upward = [f"{src} ({LAYERS[layer[src]][0]}) imports {dst} ({LAYERS[layer[dst]][0]})"
              for src, targets in _graph().items() for dst in sorted(targets)
              if layer[src] is not None and layer.get(dst) is not None and layer[dst] > layer[src]]
    assert upward == []


def test_only_the_command_line_imports_it():
    assert sorted(src for src, targets in _graph().items() if _layer(src) != COMMAND_LINE
                  and any(t.split(".")[0] == "cli" for t in targets)) == []


def test_the_command_line_is_one_module_per_command():
    """Every command of ``aerialseg --help`` has its module ``cli.<command>``."""
    from aerialseg.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert sorted(f"cli.{c}" for c in commands) == sorted(m for m in _modules() if m.startswith("cli.")
                                                          and m not in ("cli.report", "cli.options", "cli.__main__"))


def _command_line_work(tree: ast.Module, name: str) -> list[str]:
    """Where ``tree`` imports ``argparse`` or calls ``print``: the command line's job (found with ``ast``)."""
    found = [f"{name}:{node.lineno} imports argparse" for node in ast.walk(tree)
             if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "argparse" for a in node.names)
             or isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "argparse"]
    found += [f"{name}:{node.lineno} calls print" for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
    return found


def test_only_the_command_line_parses_arguments_and_prints():
    """The library returns values and reports through callbacks; ``cli`` turns them into text, bars, JSON."""
    assert [where for name, tree in _modules().items() if _layer(name) != COMMAND_LINE
            for where in _command_line_work(tree, name)] == []


def _private_uses(tree: ast.Module, name: str, known: set[str]) -> list[str]:
    """Private names of other aerialseg modules that ``tree`` imports or reads as module attributes."""
    uses = [f"{name}:{line} imports {m}.{n}" for m, names, line in _imports(tree, known)
            for n in names if _is_private(n) and m != name]
    aliases = _module_aliases(tree, known)
    uses += [f"{name}:{node.lineno} uses {node.value.id}.{node.attr}" for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
             and node.value.id in aliases and _is_private(node.attr)]
    return uses


def test_no_module_uses_another_modules_private_names():
    modules = _modules()
    known = set(modules)
    assert [use for name, tree in modules.items() for use in _private_uses(tree, name, known)] == []


@pytest.mark.parametrize("path", sorted((ROOT / "bench").glob("*.py")), ids=lambda p: p.name)
def test_benchmarks_use_public_names_only(path):
    assert _private_uses(ast.parse(path.read_text()), path.stem, set(_modules())) == []


def test_the_checks_catch_what_they_look_for():
    """The checker itself: a cycle, a private import and an upward import are all found."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse("def f():\n    from aerialseg.predict import _Run\n    from aerialseg import style\n"
                     "    return style._hidden\n")
    assert _private_uses(tree, "x", {"predict", "style"}) == ["x:2 imports predict._Run", "x:4 uses style._hidden"]
    known = {"cli", "cli.map", "cli.report"}
    tree = ast.parse("from aerialseg.cli.report import _Handler\nfrom aerialseg.cli import map as m\nm._staging\n")
    assert _private_uses(tree, "cli.map", known) == ["cli.map:1 imports cli.report._Handler",
                                                     "cli.map:3 uses m._staging"]
    assert [m for m, _, _ in _imports(tree, known)] == ["cli.report", "cli.map"]
    tree = ast.parse("import argparse\nfrom argparse import Namespace\ndef f(x):\n    print(x)\n    x.print(1)\n")
    assert _command_line_work(tree, "x") == ["x:1 imports argparse", "x:2 imports argparse", "x:4 calls print"]
    graph = {"cli": {"cli.map"}, "cli.map": {"cli.report", "predict"}, "predict": set(), "cli.report": set()}
    assert _cycle(graph) is None and _cycle({**graph, "cli.report": {"cli"}}) == ["cli", "cli.map", "cli.report", "cli"]


def test_the_architecture_doc_shows_the_same_layers():
    """docs/architecture.md's layer table lists the modules of LAYERS, layer by layer, in the same order."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = [line.split("|") for line in text.split("## Who calls whom")[0].splitlines()
            if line.startswith("| ") and "`" in line.split("|")[2]]
    documented = [(cells[1].strip(), set(re.findall(r"`([\w]+)`", cells[2]))) for cells in rows]
    assert documented == LAYERS
