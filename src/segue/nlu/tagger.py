"""A trained joint model ready to use: words in, intent and tags with calibrated confidence out.

Confidence comes from the logits divided by temperatures fitted on the valid split, so that
"0.9" means right about nine times in ten there. For serving, the model can run in a lower
precision (``precision``): ``bf16`` keeps fp32's accuracy and takes a third off the time of
one request where the CPU computes bfloat16 natively (AVX512-BF16 / AMX); ``int8`` (dynamic
quantisation of the linear layers) is faster still but loses accuracy (measured, traced,
parse + linking p50 9.2 / 5.6 / 2.5 ms for fp32 / bf16 / int8; SNIPS valid slot F1 96.4 /
96.3 / 96.0 %). :func:`serving_precision` picks bf16 where it is native, else int8.
``trace=True`` also records
the model with TorchScript for single requests (batch size 1): the traced graph skips
Python's per-module overhead, which dominates one short request on a busy CPU (measured 81 ms
eager against 25 ms traced at p50 under load 11 on 2 cores). The trace is checked against the
eager model on requests of other lengths when it is made, and dropped if they disagree.

Tags are decoded by Viterbi under the BIO rules, the intent's slot types and the learnt CRF
transitions, with the training lexicon's vote added (:mod:`segue.nlu.lexicon`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segue.errors import SegueError
from segue.nlu.evaluate import Scores, score
from segue.nlu.lexicon import SpanLexicon
from segue.nlu.model import (
    Calibration,
    JointModel,
    Labels,
    encode,
    load_checkpoint,
    load_tokenizer,
    predict_batch,
)
from segue.nlu.snips import Utterance
from segue.nlu.tagged import Tagged, softmax

#: Weight of the training lexicon's vote in decoding (nats for a span always tagged so).
#: Chosen on SNIPS valid. Trained without slot swapping (four checkpoints), 1 added 0.14 slot
#: F1 and 0.29 frame points on average, 2 added 0.19 / 0.36, 8 took the gain away. With
#: swapping (:mod:`segue.nlu.augment`, three seeds), the model needs it less: 0 / 1 / 2 gave
#: mean slot F1 96.19 / 96.25 / 96.12 % and frame 90.76 / 90.81 / 90.62 %.
LEXICON_WEIGHT = 1.0


class Tagger:
    """Wraps model, tokenizer, labels and temperatures; ``threads`` bounds torch's threads.

    Batches go to ``device``: by default where the model's parameters are (the CPU for a
    loaded checkpoint; the training device while :func:`segue.nlu.train.train` evaluates).
    """

    def __init__(
        self,
        model: JointModel,
        tokenizer: Any,
        labels: Labels,
        calibration: Calibration | None = None,
        *,
        threads: int = 1,
        info: dict[str, Any] | None = None,
        lexicon: SpanLexicon | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.model = model.eval()
        self.device = torch.device(device) if device is not None else _device_of(model)
        self.tokenizer = tokenizer
        self.labels = labels
        self.calibration = calibration or Calibration()
        self.threads = threads
        self.info = info or {}
        #: what the training set tagged each span as (see :mod:`segue.nlu.lexicon`)
        self.lexicon = lexicon
        self.lexicon_weight = LEXICON_WEIGHT
        self._traced: Any = None
        #: decode with BIO rules and the intent's slot types (Viterbi) rather than argmax
        self.constrained = True
        self._bio: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def traced(self) -> bool:
        """Whether single requests run through a verified TorchScript graph."""
        return self._traced is not None

    def trace(self) -> bool:
        """Record a TorchScript graph for batch-size-1 requests; False if it cannot be trusted."""
        probes = [["skip"], ["play", "some", "jazz", "from", "the", "nineties"], ["a"] * 40]
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                first = encode(self.tokenizer, [probes[1]])
                traced = torch.jit.freeze(
                    torch.jit.trace(
                        self.model,
                        (first.input_ids, first.attention_mask),
                        check_trace=False,
                        strict=False,
                    )
                )
                for words in probes:
                    batch = encode(self.tokenizer, [words])
                    want = self.model(batch.input_ids, batch.attention_mask)
                    got = traced(batch.input_ids, batch.attention_mask)
                    if any(
                        not torch.allclose(a, b, atol=1e-4) for a, b in zip(want, got, strict=True)
                    ):
                        return False
        except (RuntimeError, TypeError):
            return False
        finally:
            torch.set_num_threads(previous)
        self._traced = traced
        return True

    @classmethod
    def load(
        cls,
        folder: Path,
        model_dir: Path,
        *,
        precision: str = "fp32",
        trace: bool = False,
        threads: int = 1,
    ) -> Tagger:
        model, labels, calibration, info = load_checkpoint(folder, model_dir)
        model = with_precision(model, precision)
        tagger = cls(
            model,
            load_tokenizer(model_dir),
            labels,
            calibration,
            threads=threads,
            info=info,
            lexicon=SpanLexicon.load(folder),
        )
        if trace:
            tagger.trace()
        return tagger

    def logits(
        self, words: Sequence[Sequence[str]], batch_size: int = 64
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Raw intent logits (n, I) and per-word tag logits, batched by length."""
        order = sorted(range(len(words)), key=lambda i: (len(words[i]), i))
        intents = np.zeros((len(words), len(self.labels.intents)), dtype=np.float32)
        tags: list[np.ndarray] = [np.zeros(0)] * len(words)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    chunk = order[start : start + batch_size]
                    # the traced graph serves single requests; batches run eagerly
                    model = self._traced if len(chunk) == 1 and self._traced else self.model
                    batch = encode(self.tokenizer, [words[i] for i in chunk]).to(self.device)
                    pred = predict_batch(model, batch)
                    intents[chunk] = pred.intent_logits
                    for i, row in zip(chunk, pred.word_tag_logits, strict=True):
                        tags[i] = row
        finally:
            torch.set_num_threads(previous)
        return intents, tags

    def tag(self, words: Sequence[Sequence[str]], batch_size: int = 64) -> list[Tagged]:
        intent_logits, tag_logits = self.logits(words, batch_size)
        return self.decode(words, intent_logits, tag_logits)

    def decode(
        self,
        words: Sequence[Sequence[str]],
        intent_logits: np.ndarray,
        tag_logits: Sequence[np.ndarray],
    ) -> list[Tagged]:
        cal = self.calibration
        intent_p = softmax(intent_logits, cal.intent_temperature)
        crf = self._crf_scores()
        out = []
        for row, w in enumerate(words):
            tag_p = softmax(tag_logits[row], cal.slot_temperature)
            i = int(intent_p[row].argmax())
            bonus = None
            if self.lexicon is not None and self.lexicon_weight:
                bonus = self.lexicon.bonus(w, self.labels.tags, self.lexicon_weight)
            best = self._best_tags(tag_p, self.labels.intents[i], bonus, crf)
            out.append(
                Tagged(
                    words=tuple(w),
                    intent=self.labels.intents[i],
                    intent_confidence=float(intent_p[row, i]),
                    tags=tuple(self.labels.tags[t] for t in best),
                    tag_confidence=tuple(float(tag_p[j, t]) for j, t in enumerate(best)),
                    intent_probs=tuple(float(p) for p in intent_p[row]),
                )
            )
        return out

    def _crf_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """The learnt transitions and start scores over the slot temperature, as host arrays
        (zeros for a model without a CRF); read at each decoding, as training evaluates while
        they change."""
        temperature = self.calibration.slot_temperature
        n_tags = len(self.labels.tags)
        if not hasattr(self.model, "transitions"):
            return np.zeros((n_tags, n_tags)), np.zeros(n_tags)
        learnt = self.model.transitions.detach().double().cpu().numpy() / temperature
        first = self.model.start.detach().double().cpu().numpy() / temperature
        return learnt, first

    def _best_tags(
        self,
        tag_p: np.ndarray,
        intent: str,
        bonus: np.ndarray | None = None,
        crf: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """The most likely tag sequence that obeys BIO and the intent's slot types (Viterbi
        over log-probabilities plus the lexicon's ``bonus``); plain argmax with
        ``constrained=False``. ``crf``: :meth:`_crf_scores`, read once per batch by the
        caller (a copy from the device per word sequence costs more than the walk)."""
        logp = np.log(tag_p + 1e-12)
        if bonus is not None:
            logp = logp + bonus
        if not self.constrained:
            return logp.argmax(axis=1)
        if self._bio is None:
            self._bio = self.labels.transitions()
        start, follow = self._bio
        # the calibrated log-probabilities are the emissions / T less a per-word constant, so
        # the learnt transitions / T keep the CRF's best path (zero transitions: plain Viterbi)
        learnt, first = crf if crf is not None else self._crf_scores()
        mask = self.labels.tag_mask(intent)
        if mask is not None:
            logp = np.where(mask, logp, -1e9)
        blocked = np.where(follow, learnt, -1e9)
        score = np.where(start, logp[0] + first, -1e9)
        back = np.zeros(logp.shape, dtype=np.int64)
        for t in range(1, len(logp)):
            total = score[:, None] + blocked
            back[t] = total.argmax(axis=0)
            score = total[back[t], np.arange(len(score))] + logp[t]
        path = [int(score.argmax())]
        for t in range(len(logp) - 1, 0, -1):
            path.append(int(back[t, path[-1]]))
        return np.array(path[::-1])

    def evaluate(self, utterances: Sequence[Utterance]) -> Scores:
        tagged = self.tag([u.words for u in utterances])
        return score(
            [u.intent for u in utterances],
            [u.tags for u in utterances],
            [t.intent for t in tagged],
            [t.tags for t in tagged],
        )


def _device_of(model: Any) -> torch.device:
    """Where the model's first parameter is; the CPU for a model without parameters."""
    parameters = model.parameters() if hasattr(model, "parameters") else iter(())
    first = next(iter(parameters), None)
    return first.device if first is not None else torch.device("cpu")


#: What :meth:`Tagger.load` can run the model in.
PRECISIONS = ("fp32", "bf16", "int8")


def serving_precision() -> str:
    """bf16 where the CPU computes bfloat16 natively, else int8 (see the module docstring):
    emulated bfloat16 would be slower than fp32."""
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "int8"


def with_precision(model: JointModel, precision: str) -> JointModel:
    """The model for inference in ``precision``: itself (fp32), cast to bfloat16, or a copy
    with int8 dynamic quantisation of every Linear layer."""
    if precision not in PRECISIONS:
        raise SegueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
    return model
