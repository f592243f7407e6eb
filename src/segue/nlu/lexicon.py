"""What the training set says each slot value is: a memory of tagged spans for decoding.

The fine-tuned tagger fits its training set almost perfectly (slot F1 99.8 % on SNIPS train)
yet on valid still calls spans the training set named outright by another type ("a mis niños
de 30" was a ``playlist`` five times in train; the tagger said ``album``), and most of what
is left wrong is such knowledge of names rather than grammar. The lexicon keeps, for every
span text seen in training, how often those words occur at all and how often they were tagged
as each slot type; decoding adds ``weight × share`` to the log-probability of tagging a
matching word run as that type (:meth:`SpanLexicon.bonus`). The share keeps common words
honest: "today" is a ``timeRange`` in most of its occurrences, "the" almost never a slot.

Generated utterances are part of the training set, so the catalog's own names enter the
lexicon the same way.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segue.errors import SegueError
from segue.nlu.evaluate import spans
from segue.nlu.snips import Utterance

FILE = "lexicon.json"
#: Longest span (in words) that the lexicon remembers and matches.
MAX_WORDS = 8


@dataclass(frozen=True)
class SpanLexicon:
    """``entries[text] = (times the words occur in training, {slot type: times tagged so})``."""

    entries: dict[str, tuple[int, dict[str, int]]]
    max_words: int = MAX_WORDS

    @classmethod
    def from_utterances(
        cls, utterances: Sequence[Utterance], max_words: int = MAX_WORDS
    ) -> SpanLexicon:
        lowered = [[w.lower() for w in u.words] for u in utterances]
        tagged: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for u, words in zip(utterances, lowered, strict=True):
            for start, end, kind in spans(u.tags):
                if end - start <= max_words:
                    tagged[" ".join(words[start:end])][kind] += 1
        occurs: Counter[str] = Counter()
        for words in lowered:
            for _start, _end, text in _runs(words, max_words):
                if text in tagged:
                    occurs[text] += 1
        entries = {text: (occurs[text], dict(kinds)) for text, kinds in tagged.items()}
        return cls(entries, max_words)

    def bonus(self, words: Sequence[str], tags: Sequence[str], weight: float) -> np.ndarray:
        """(words, tags) log-score additions: ``weight × share`` on B-X at the first word and
        I-X at the others of every word run tagged X in training (``share`` = the fraction of
        the run's occurrences tagged X)."""
        index = {tag: j for j, tag in enumerate(tags)}
        out = np.zeros((len(words), len(tags)))
        for start, end, text in _runs([w.lower() for w in words], self.max_words):
            entry = self.entries.get(text)
            if entry is None:
                continue
            occurs, kinds = entry
            for kind, times in kinds.items():
                begin, inside = index.get(f"B-{kind}"), index.get(f"I-{kind}")
                if begin is None or inside is None:
                    continue
                share = weight * times / max(occurs, times)
                out[start, begin] += share
                out[start + 1 : end, inside] += share
        return out

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{FILE}.{os.getpid()}.tmp"
        body = {"max_words": self.max_words, "entries": self.entries}
        tmp.write_text(json.dumps(body, ensure_ascii=False, sort_keys=True), encoding="utf-8")
        os.replace(tmp, folder / FILE)

    @classmethod
    def load(cls, folder: Path) -> SpanLexicon | None:
        """The lexicon saved with a checkpoint; None for a checkpoint made without one."""
        path = folder / FILE
        if not path.is_file():
            return None
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            entries = {
                str(text): (int(occurs), {str(k): int(v) for k, v in kinds.items()})
                for text, (occurs, kinds) in body["entries"].items()
            }
            return cls(entries, int(body["max_words"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SegueError(f"{path} is not a segue span lexicon: {exc}") from None


def _runs(words: Sequence[str], max_words: int) -> list[tuple[int, int, str]]:
    """Every run of up to ``max_words`` consecutive words: (start, end exclusive, text)."""
    return [
        (start, end, " ".join(words[start:end]))
        for start in range(len(words))
        for end in range(start + 1, min(len(words), start + max_words) + 1)
    ]
