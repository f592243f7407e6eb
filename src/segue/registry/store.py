"""The model registry on disk: immutable versions, a production pointer, a promotion history.

Layout under the root (``settings.data_dir / "registry"`` by default)::

    <name>/v0001/            a saved model (as ``registry.trained.save_trained`` writes it)
    <name>/v0001/manifest.json   how it was made: type, params, data range, metrics, code
    <name>/v0001/artifacts/  files published with it (e.g. the batch recommendations)
    <name>/PRODUCTION        {"version": "v0002", "stack": ["v0001"], ...}: what serves now
    <name>/promotions.jsonl  every promote and rollback, for people (never read to decide)

Why this shape:

- **Versions are immutable.** A version folder is assembled in a staging folder and renamed
  into place, so a reader never sees a half-copied model; nothing rewrites it afterwards.
  Rolling back therefore gives back exactly the files (model and recommendations) that served
  before.
- **Promotion is one file replace.** ``PRODUCTION`` holds the serving version *and* the stack
  of versions it replaced; it is written to a temporary file, fsynced and ``os.replace``-d, so
  readers see the old pointer or the new one, never a mix, and the rollback history can never
  disagree with the pointer. The API polls :meth:`ModelRegistry.production` about once a
  second; that reads this one small file (manifests are cached: versions never change).
- **Writers take a lock** (``fcntl.flock`` on ``<name>/.lock``) so that two publishes never
  pick the same version number and two promotions never interleave their read-modify-write.
  Readers take no lock.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segue.config import Settings
from segue.errors import SegueError

POINTER = "PRODUCTION"
MANIFEST = "manifest.json"
HISTORY = "promotions.jsonl"
ARTIFACTS = "artifacts"
#: How many replaced versions ``PRODUCTION`` remembers for rollback (keeps the file small).
MAX_STACK = 100

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_VERSION = re.compile(r"^v(\d{4,})$")


class RegistryError(SegueError):
    """A registry operation cannot be done (unknown name or version, nothing to roll back)."""


@dataclass(frozen=True)
class ModelVersion:
    """One published version: where its files are and the manifest that describes it."""

    name: str
    version: str
    path: Path
    manifest: dict[str, Any] = field(compare=False)

    @property
    def artifacts(self) -> Path:
        """Folder of the files published alongside the model (may not exist)."""
        return self.path / ARTIFACTS


def default_registry_root(settings: Settings) -> Path:
    return settings.data_dir / "registry"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``git describe`` of the source tree when it is a checkout, else the package version."""
    source = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        described = out.stdout.strip()
        if described:
            return f"git:{described}"
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"segue {version('segue')}"
    except PackageNotFoundError:
        return "unknown"


class ModelRegistry:
    """Publish, list, promote and roll back model versions under ``root``; see module doc."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._manifests: dict[tuple[str, str], dict[str, Any]] = {}

    # -- writing ---------------------------------------------------------------------------
    def publish(
        self,
        name: str,
        source_dir: Path,
        manifest: Mapping[str, Any],
        *,
        extra: Mapping[str, Path] | None = None,
    ) -> ModelVersion:
        """Copy a saved model folder in as the next version; does not promote it.

        ``extra`` maps artifact names to files or folders copied into ``artifacts/<name>``
        (the flow publishes the day's batch recommendations this way, so that a rollback
        brings them back with the model). The registry adds ``name``, ``version``,
        ``created_at`` and ``code_version`` (unless given) to the manifest.
        """
        _check_name(name)
        source_dir = Path(source_dir)
        if not source_dir.is_dir():
            raise RegistryError(f"cannot publish {name!r}: {source_dir} is not a folder")
        body = dict(manifest)
        body.setdefault("code_version", code_version())
        try:
            json.dumps(body)
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"manifest for {name!r} is not JSON-serialisable: {exc}") from exc
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        try:
            target = staging / "model"
            shutil.copytree(source_dir, target)
            for key, path in (extra or {}).items():
                _check_name(key)
                dest = target / ARTIFACTS / key
                dest.parent.mkdir(parents=True, exist_ok=True)
                if Path(path).is_dir():
                    shutil.copytree(path, dest)
                elif Path(path).is_file():
                    shutil.copy2(path, dest)
                else:
                    raise RegistryError(f"cannot publish {name!r}: artifact {path} does not exist")
            with self._lock(name):
                version = _format_version(self._last_number(name) + 1)
                body.update(
                    name=name,
                    version=version,
                    created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                )
                _write_json_atomic(target / MANIFEST, body)
                _fsync_tree(target)
                target.rename(folder / version)
                _fsync_dir(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.get(name, version)

    def promote(self, name: str, version: str) -> ModelVersion:
        """Make ``version`` serve; the version it replaces goes on the rollback stack."""
        target = self.get(name, version)
        with self._lock(name):
            pointer = self._read_pointer(name)
            current = pointer.get("version") if pointer else None
            if current == version:
                return target
            stack = list(pointer.get("stack", [])) if pointer else []
            if current is not None:
                stack = [*stack, current][-MAX_STACK:]
            self._write_pointer(name, version, stack)
            self._log(name, "promote", version, current)
        return target

    def rollback(self, name: str) -> ModelVersion:
        """Serve the previously promoted version again (exactly its files); returns it."""
        _check_name(name)
        with self._lock(name):
            pointer = self._read_pointer(name)
            if pointer is None:
                raise RegistryError(f"{name!r} has no production version to roll back from")
            stack = list(pointer.get("stack", []))
            if not stack:
                raise RegistryError(
                    f"{name!r}: {pointer['version']} is the first promoted version; "
                    "there is nothing earlier to roll back to"
                )
            previous = stack.pop()
            self.get(name, previous)  # still on disk?
            self._write_pointer(name, previous, stack)
            self._log(name, "rollback", previous, pointer["version"])
        return self.get(name, previous)

    # -- reading ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))

    def versions(self, name: str) -> list[ModelVersion]:
        """Every published version of ``name``, oldest first."""
        _check_name(name)
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = sorted(
            (int(m.group(1)), p.name)
            for p in folder.iterdir()
            if (m := _VERSION.match(p.name)) and (p / MANIFEST).is_file()
        )
        return [self.get(name, version) for _, version in found]

    def get(self, name: str, version: str) -> ModelVersion:
        _check_name(name)
        if not _VERSION.match(version):
            raise RegistryError(f"{version!r} is not a version (expected e.g. v0001)")
        path = self.root / name / version
        key = (name, version)
        manifest = self._manifests.get(key)
        if manifest is None:
            try:
                manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            except FileNotFoundError:
                known = ", ".join(v.version for v in self.versions(name)) or "none"
                raise RegistryError(
                    f"no version {version} of {name!r} in {self.root} (published: {known})"
                ) from None
            self._manifests[key] = manifest
        return ModelVersion(name, version, path, manifest)

    def production(self, name: str) -> ModelVersion | None:
        """The serving version, or None before the first promotion. Cheap: one small file."""
        _check_name(name)
        pointer = self._read_pointer(name)
        if pointer is None:
            return None
        return self.get(name, pointer["version"])

    def rollback_target(self, name: str) -> str | None:
        """The version a rollback would restore, if any."""
        _check_name(name)
        pointer = self._read_pointer(name)
        stack = pointer.get("stack", []) if pointer else []
        return stack[-1] if stack else None

    def history(self, name: str) -> list[dict[str, Any]]:
        """Promotions and rollbacks of ``name``, oldest first (for people; never decides)."""
        _check_name(name)
        path = self.root / name / HISTORY
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    # -- internals -------------------------------------------------------------------------
    def _read_pointer(self, name: str) -> dict[str, Any] | None:
        try:
            text = (self.root / name / POINTER).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            pointer = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{self.root / name / POINTER} is corrupt: {exc}") from exc
        return pointer

    def _write_pointer(self, name: str, version: str, stack: list[str]) -> None:
        body = {
            "name": name,
            "version": version,
            "stack": stack,
            "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        }
        _write_json_atomic(self.root / name / POINTER, body)

    def _log(self, name: str, action: str, version: str, previous: str | None) -> None:
        entry = {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "action": action,
            "version": version,
            "previous": previous,
            "user": os.environ.get("USER") or os.environ.get("USERNAME") or "unknown",
        }
        with (self.root / name / HISTORY).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def _last_number(self, name: str) -> int:
        folder = self.root / name
        numbers = [int(m.group(1)) for p in folder.iterdir() if (m := _VERSION.match(p.name))]
        return max(numbers, default=0)

    @contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        folder = self.root / name
        if not folder.is_dir():
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"no model {name!r} in {self.root} (known: {known})")
        with (folder / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise RegistryError(
            f"bad registry name {name!r}: use letters, digits, '.', '_' or '-' (max 100), "
            "starting with a letter or digit"
        )


def _format_version(number: int) -> str:
    return f"v{number:04d}"


def _write_json_atomic(path: Path, body: Mapping[str, Any]) -> None:
    """Temp file in the same folder, fsync, ``os.replace``, fsync the folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(body, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Flush every copied file before the rename makes the version visible."""
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(root)
