"""Does requirements.lock still say what pyproject.toml asks for?

``--stamp`` (run by ``scripts/lock.sh`` after pip-compile) drops the lock's reference to segue
itself and records a digest of pyproject's dependency tables at the end of the lock. Without
it, the check fails when the digest differs (a dependency was changed and the lock not
refreshed) or when a requirement is not met by the pinned version, naming each one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

STAMP = "# pyproject-dependencies-sha256: "
LOCKED_EXTRAS = ("all", "dev")


def dependency_tables(pyproject: Path) -> dict[str, list[str]]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return {"": project.get("dependencies", []), **project.get("optional-dependencies", {})}


def digest(tables: dict[str, list[str]]) -> str:
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()


def requirements(tables: dict[str, list[str]], name: str) -> list[Requirement]:
    """Everything the core and ``LOCKED_EXTRAS`` ask for, segue's own extras expanded."""
    wanted, seen, queue = [], set(), ["", *LOCKED_EXTRAS]
    while queue:
        extra = queue.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in tables.get(extra, []):
            req = Requirement(line)
            if canonicalize_name(req.name) == name:
                queue.extend(req.extras)
            else:
                wanted.append(req)
    return wanted


def pins(lock_text: str) -> dict[str, str]:
    found = {}
    for match in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", lock_text, re.M):
        found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def problems(pyproject: Path, lock: Path) -> list[str]:
    if not lock.is_file():
        return [f"{lock} is missing: run `bash scripts/lock.sh`"]
    tables = dependency_tables(pyproject)
    text = lock.read_text(encoding="utf-8")
    found: list[str] = []
    stamp = re.search("^" + re.escape(STAMP) + r"(\w+)$", text, re.M)
    if stamp is None or stamp.group(1) != digest(tables):
        found.append(f"{pyproject.name}'s dependencies changed since {lock.name} was made")
    pinned = pins(text)
    name = canonicalize_name(tomllib.loads(pyproject.read_text())["project"]["name"])
    for req in requirements(tables, name):
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = pinned.get(canonicalize_name(req.name))
        if version is None:
            found.append(f"{req} is not in {lock.name}")
        elif not req.specifier.contains(version, prereleases=True):
            found.append(f"{req} is not met by the locked {req.name}=={version}")
    return found


def stamp(pyproject: Path, lock: Path) -> None:
    """Drop segue's reference to itself (its ``all`` extra names segue) and add the digest."""
    lines = lock.read_text(encoding="utf-8").splitlines()
    kept: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith(STAMP):
            continue
        if re.match(r"^segue @ ", line) or line.startswith("# WARNING: pip install will require"):
            skipping = True
            continue
        if skipping and (line.startswith("    ") or line.startswith("# Consider")):
            continue
        skipping = False
        kept.append(line)
    kept.append(STAMP + digest(dependency_tables(pyproject)))
    lock.write_text("\n".join(kept) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--lock", type=Path, default=Path("requirements.lock"))
    parser.add_argument("--stamp", action="store_true", help="record pyproject's digest")
    args = parser.parse_args()
    if args.stamp:
        stamp(args.pyproject, args.lock)
    found = problems(args.pyproject, args.lock)
    for problem in found:
        print(f"lock check: {problem}", file=sys.stderr)
    if found:
        print("refresh it with `bash scripts/lock.sh` and commit both files", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
