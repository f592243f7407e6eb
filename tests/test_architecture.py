"""The layers of docs/architecture.md, checked by parsing every import of the package.

Lower layers never import higher ones, no module imports itself back through others (an
import cycle, counted with the imports inside functions too: a local import hides a cycle,
it does not remove it), and every import is absolute.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "segue"

BASE = {"errors", "config", "progress", "extras"}
# package -> segue packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "progress": set(),
    "extras": {"errors"},
    "config": {"errors"},
    "ranking": set(),
    "calibration": {"errors"},  # reliability curve and ECE, shared by nba and nlu
    "experiments": {"errors"},  # assignment and A/B statistics: pure numpy/scipy
    "data": BASE,
    "store": BASE | {"data"},
    "online": BASE | {"data"},
    "dataset": BASE | {"data"},
    # segue.models.staged (the staged recommender: retrieval, faiss, LightGBM ranker,
    # re-ranking) is part of models and keeps its rule: nothing above dataset
    "models": BASE | {"ranking", "data", "dataset"},
    "eval": BASE | {"ranking", "data", "dataset", "models"},
    "nlu": BASE | {"calibration", "data", "dataset"},
    "registry": BASE | {"data", "dataset", "models"},
    "sing": BASE | {"data"},  # the lead vocal's level: signal processing on audio, no store
}
ALLOWED["serving"] = BASE | {
    "ranking", "data", "store", "online", "dataset", "models", "registry", "experiments"
}  # fmt: skip
ALLOWED["products"] = ALLOWED["serving"] | {"serving"}
# the closed-loop listener simulator: the world's listeners, segue's models, experiments
ALLOWED["simulation"] = BASE | {"ranking", "data", "dataset", "models", "experiments"}
ALLOWED["nba"] = ALLOWED["serving"] | {"calibration", "eval"}
ALLOWED["jobs"] = set(ALLOWED)  # the use cases may use every layer below them
ALLOWED["batch"] = ALLOWED["jobs"] | {"jobs"}  # the daily run: steps built on the use cases
# the pages for people: templates and scripts that call the API; the API serves them
ALLOWED["web"] = ALLOWED["jobs"] | {"jobs"}
# the faces may use everything below them; the CLI launches the API and prints its answers
ALLOWED["api"] = ALLOWED["batch"] | {"batch", "web"}
ALLOWED["cli"] = ALLOWED["api"] | {"api"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(relative level, module, imported names) of every import statement in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", [a.name for a in node.names]))
    return found


def _segue_targets(path: Path) -> set[str]:
    """The segue modules a file imports: ``from segue.x import y`` is ``segue.x.y`` when y is
    a module, else ``segue.x``."""
    targets = set()
    for level, module, names in _imports(path):
        if level or not (module == "segue" or module.startswith("segue.")):
            continue
        subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
        targets.update(subs or ([module] if module in MODULES else []))
    return targets


def test_every_package_is_in_the_layer_table() -> None:
    packages = {p.stem if p.is_file() else p.name for p in SRC.iterdir()}
    packages -= {"__init__", "__pycache__", "py"}
    assert packages <= set(ALLOWED), f"add {packages - set(ALLOWED)} to ALLOWED and the docs"


def test_lower_layers_never_import_higher_ones() -> None:
    violations = []
    for name, path in MODULES.items():
        package = name.split(".")[1] if "." in name else None
        if package is None:
            continue
        for target in _segue_targets(path):
            imported = target.split(".")[1]
            if imported != package and imported not in ALLOWED[package]:
                violations.append(f"{name} imports {target}")
    assert not violations, "\n".join(sorted(violations))


def test_every_import_is_absolute() -> None:
    relative = [
        f"{name}: from {'.' * level}{module} import ..."
        for name, path in MODULES.items()
        for level, module, _ in _imports(path)
        if level
    ]
    assert not relative, "\n".join(relative)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    # a module importing names from its own package's __init__ counts too: that __init__
    # usually imports the module back (models.hybrid <-> models once did)
    graph = {name: _segue_targets(path) for name, path in MODULES.items()}
    cycles = _cycles(graph)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)
