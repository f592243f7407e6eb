"""Lower layers never import higher ones (docs/architecture.md's table, checked by parsing)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "segue"

# package -> segue packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": {"errors"},
    "ranking": set(),
    "data": {"errors", "config"},
    "store": {"errors", "config", "data"},
    "online": {"errors", "config", "data"},
    "dataset": {"errors", "config", "data"},
    "models": {"errors", "config", "ranking", "data", "dataset"},
    "pipeline": {"errors", "config", "ranking", "data", "dataset", "models", "online"},
    "eval": {"errors", "config", "ranking", "data", "dataset", "models"},
    "nlu": {"errors", "config", "data", "dataset"},
    "registry": {"errors", "config", "data", "dataset", "models"},
    "products": {
        "errors",
        "config",
        "ranking",
        "data",
        "store",
        "online",
        "dataset",
        "models",
        "pipeline",
    },
    "nba": {"errors", "config", "ranking", "data", "store", "online", "dataset", "models", "eval"},
}
ALLOWED["jobs"] = set(ALLOWED)  # the units of work may use every layer below them
# the faces may use everything below them, but not each other
ALLOWED["cli"] = ALLOWED["jobs"] | {"jobs", "api"}  # ``segue serve`` launches the API
ALLOWED["api"] = ALLOWED["jobs"] | {"jobs"}
ALLOWED["flows"] = ALLOWED["jobs"] | {"jobs"}


def _segue_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "segue" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_package_is_in_the_layer_table() -> None:
    packages = {p.stem if p.is_file() else p.name for p in SRC.iterdir()}
    packages -= {"__init__", "__pycache__", "py"}
    assert packages <= set(ALLOWED), f"add {packages - set(ALLOWED)} to ALLOWED and the docs"


def test_lower_layers_never_import_higher_ones() -> None:
    violations = []
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC)
        package = relative.parts[0].removesuffix(".py")
        if package == "__init__":
            continue
        for imported in _segue_imports(path) - {package}:
            if imported not in ALLOWED[package]:
                violations.append(f"{relative} imports segue.{imported}")
    assert not violations, "\n".join(sorted(violations))
