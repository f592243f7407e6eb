"""The training and validation corpora: SNIPS plus utterances generated from a catalog.

Generated utterances get their own valid part (a different seed, so different names and
augmentations) to report how well segue's own intents are learnt; the SNIPS valid split is
what selects the epoch and what the published numbers compare to. Cross-validation
(:mod:`segue.nlu.crossval`) pools SNIPS train and valid instead and adds the same generated
parts (:func:`generated_parts`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from segue.data.model import Item
from segue.nlu.generate import Vocabulary, generate, lastfm_artist_names
from segue.nlu.snips import Utterance, read_split


@dataclass(frozen=True)
class Corpus:
    train: list[Utterance]
    valid_snips: list[Utterance]
    valid_generated: list[Utterance]

    @property
    def valid(self) -> list[Utterance]:
        """Both valid parts: what the confidence is calibrated on."""
        return [*self.valid_snips, *self.valid_generated]


def synthetic_items(seed: int = 7) -> list[Item]:
    """The default synthetic world's catalog (about two seconds to build)."""
    from segue.data.synth import SynthParams, generate_world

    return generate_world(SynthParams(seed=seed)).items


def build_corpus(
    items: Iterable[Item],
    *,
    snips_root: Path | None = None,
    lastfm_artists: Path | None = None,
    per_intent: int = 150,
    seed: int = 0,
) -> Corpus:
    """SNIPS train + generated train; SNIPS valid and a generated valid of a third the size."""
    generated, generated_valid = generated_parts(
        items, lastfm_artists=lastfm_artists, per_intent=per_intent, seed=seed
    )
    return Corpus(
        train=[*read_split("train", snips_root), *generated],
        valid_snips=read_split("valid", snips_root),
        valid_generated=generated_valid,
    )


def generated_parts(
    items: Iterable[Item],
    *,
    lastfm_artists: Path | None = None,
    per_intent: int = 150,
    seed: int = 0,
) -> tuple[list[Utterance], list[Utterance]]:
    """The generated train part (``per_intent`` per intent) and the generated valid part (a
    third the size, seed + 10 000: other names and augmentations, the same templates). Both
    come from the catalog's names alone, never from SNIPS."""
    extra = lastfm_artist_names(lastfm_artists) if lastfm_artists else []
    vocab = Vocabulary.from_items(items, extra)
    valid = generate(vocab, max(1, per_intent // 3), seed + 10_000)
    return generate(vocab, per_intent, seed), valid
