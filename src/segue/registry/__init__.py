"""Versioned model artifacts on disk, with a manifest each and an atomic production pointer.

``ModelRegistry(root)`` keeps ``root/<name>/<version>/`` folders (a saved model plus
``manifest.json``) and one small ``PRODUCTION`` file per name that says which version serves.
See :mod:`segue.registry.store` for the layout and why promotion is atomic.
"""

from segue.registry.store import (
    ModelRegistry,
    ModelVersion,
    RegistryError,
    code_version,
    default_registry_root,
)

__all__ = [
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "code_version",
    "default_registry_root",
]
