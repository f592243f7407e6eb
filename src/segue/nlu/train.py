"""Fine-tuning the joint model, choosing the epoch on the valid split, calibrating there.

Or, with ``TrainConfig(select=False)``, no choosing: the weights after the fixed number of
epochs are kept (evaluations on valid, if any, only record the curve; ``evals_per_epoch=0``
runs none, and the valid set may then be empty), and the temperatures are fitted on the
``calibration_set`` the caller names. That is how the model trained on all the data is made,
once cross-validation (:mod:`segue.nlu.crossval`) has fixed the epoch count.

Reproducible for a seed: the heads' initialisation, dropout and the batch order all draw
from generators seeded here, and torch runs with a fixed number of threads, so the same seed,
data and thread count give the same weights (tests check this bit for bit).

Speed on a small CPU: batches hold utterances of similar length (less padding); of the word
embedding table (half the parameters) only the rows of sub-words the training set uses are
trained (:class:`SeenRows`: the others get no gradient anyway, yet a dense table cost every
step a 12 M-number gradient and optimiser pass, 30 % of a step); AdamW runs fused; forward
passes run in bfloat16 autocast; training stops after a fixed number of epochs with a linear
decay to zero. On a machine shared with other work use ``threads=1``: two OpenMP threads
waiting on each other for a busy core ran four times slower per step than one thread
(measured 10.1 s against 2.3 s at load 10 on 2 cores).

On a GPU (``TrainConfig(device="cuda")``, ``--device cuda``): the model, the batches, the
CRF's likelihood and the evaluations' forward passes run there (bfloat16 autocast on the
GPU); tokenising, decoding and the temperatures' fit stay on the host. Checkpoints are saved
as host tensors, so they load on a CPU as any other. A GPU run is reproducible only as far
as its kernels are; the CPU path is unchanged.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segue.calibration import expected_calibration_error
from segue.errors import SegueError
from segue.nlu.augment import SlotSwap
from segue.nlu.lexicon import SpanLexicon
from segue.nlu.model import (
    IGNORE,
    Batch,
    Calibration,
    JointModel,
    Labels,
    crf_nll,
    encode,
    load_encoder,
    load_tokenizer,
    save_checkpoint,
    word_emissions,
)
from segue.nlu.snips import Utterance
from segue.nlu.tagged import frame_confidence, softmax
from segue.nlu.tagger import Tagger


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults are the full run's (SNIPS + generated, 2 cores)."""

    #: chosen by 5-fold cross-validation on SNIPS train + valid: 10 held out 0.6 points of
    #: frame accuracy more than 5.5 (docs/benchmarks.md); ~16 min on one idle core
    epochs: float = 10.0
    batch_size: int = 32
    encoder_lr: float = 1e-4
    head_lr: float = 1e-3
    warmup: float = 0.05
    weight_decay: float = 0.01
    dropout: float = 0.1
    seed: int = 0
    threads: int = 1
    freeze_word_embeddings: bool = False
    #: keep only the first transformer layers (tests); None = all six
    layers: int | None = None
    #: stop after this many steps (tests); None = ``epochs`` worth
    max_steps: int | None = None
    #: evaluate on valid this many times per epoch (with ``select``, the best evaluation is
    #: kept); 0 = never (no selection then)
    evals_per_epoch: int = 1
    #: keep the weights of the evaluation with the best valid frame accuracy; False keeps the
    #: last weights (after ``epochs``), evaluations then only record the curve
    select: bool = True
    #: learn tag transitions with a CRF likelihood over words (decoding uses them)
    crf: bool = True
    #: run training forward passes in bfloat16 where the CPU has it (weights, optimiser and
    #: evaluation stay float32): ~15% faster steps on AVX512-BF16, so more epochs fit the budget
    bf16: bool = True
    #: each span of a training utterance is swapped, with this probability, for another value
    #: its (intent, slot type) takes in training (:mod:`segue.nlu.augment`): 0.3 added 0.31 /
    #: 0.14 slot F1 on two seeds; 0.5 no more than 0.3 (one seed); 0 = off
    swap_slots: float = 0.3
    #: where the model trains and evaluates: "cpu", or "cuda" / "cuda:N" for a GPU
    #: (:func:`torch_device` refuses one that is not there when training starts)
    device: str = "cpu"
    #: R-Drop (Liang et al. 2021): each utterance passes twice in a step, under different
    #: dropout, and this weight times the symmetric KL divergence between the two passes'
    #: intent and word-tag distributions joins the loss, so the model learns to agree with
    #: itself; 0 = off (on, a step computes a batch twice the size)
    rdrop: float = 0.0

    def __post_init__(self) -> None:
        check_device_name(self.device)
        if self.epochs <= 0 or self.batch_size < 1 or self.threads < 1:
            raise SegueError(
                f"training needs epochs > 0, batch_size >= 1 and threads >= 1; got {self}"
            )
        if not (math.isfinite(self.rdrop) and self.rdrop >= 0.0):
            raise SegueError(f"rdrop is a weight >= 0; got {self.rdrop}")
        if not 0.0 <= self.swap_slots <= 1.0:
            raise SegueError(f"swap_slots is a probability in [0, 1]; got {self.swap_slots}")
        if self.evals_per_epoch < 0 or (self.select and self.evals_per_epoch < 1):
            raise SegueError(
                "evals_per_epoch is >= 1 when the best evaluation is kept (select=True), "
                f">= 0 otherwise; got {self.evals_per_epoch} with select={self.select}"
            )


_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def check_device_name(name: str) -> None:
    """A SegueError unless ``name`` is "cpu", "cuda" or "cuda:N"."""
    if not isinstance(name, str) or not _DEVICE.fullmatch(name):
        raise SegueError(f"device is 'cpu', 'cuda' or 'cuda:N' (N a GPU's index); got {name!r}")


def torch_device(name: str) -> torch.device:
    """The torch device for ``name``; a SegueError when it names a GPU this machine lacks."""
    check_device_name(name)
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SegueError(
                f"device {name!r} asked for, but torch sees no CUDA GPU here "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); "
                "use --device cpu"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise SegueError(
                f"device {name!r} asked for, but torch sees {count} GPU(s): "
                f"cuda:0 to cuda:{count - 1}"
            )
    return device


@dataclass
class TrainResult:
    tagger: Tagger
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


Progress = Callable[[str], None]


def train(
    train_set: Sequence[Utterance],
    valid_set: Sequence[Utterance],
    model_dir: Path,
    config: TrainConfig = TrainConfig(),
    *,
    calibration_set: Sequence[Utterance] | None = None,
    labels: Labels | None = None,
    progress: Progress | None = None,
    out: Path | None = None,
) -> TrainResult:
    """Fine-tune on ``train_set``; keep the evaluation with the best valid frame accuracy,
    or with ``config.select=False`` the last weights.

    ``valid_set`` selects the epoch (or, without selection, is evaluated for the curve in
    ``history``; it may then be empty); temperatures are fitted on ``calibration_set``
    (default: ``valid_set``). ``info["kept_step"]`` says whose weights were kept. With ``out``
    the checkpoint is saved there.
    """
    if not train_set:
        raise SegueError("training needs utterances in the train set")
    if config.select and not valid_set:
        raise SegueError(
            "choosing the best evaluation needs utterances in the valid set "
            "(TrainConfig(select=False) keeps the last weights instead)"
        )
    calibration_set = calibration_set if calibration_set is not None else valid_set
    if not calibration_set:
        raise SegueError("calibrating the confidence needs utterances: name a calibration set")
    say = progress or (lambda _msg: None)
    device = torch_device(config.device)
    started = time.perf_counter()
    cpu_started = time.process_time()
    labels = labels or Labels.from_utterances([*train_set, *valid_set, *calibration_set])
    if labels.slots_by_intent is None:
        labels = labels.with_slots_from(train_set)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        torch.manual_seed(config.seed)
        tokenizer = load_tokenizer(model_dir)
        encoder = load_encoder(model_dir, layers=config.layers)
        model = JointModel(encoder, len(labels.intents), len(labels.tags), config.dropout)
        model.to(device)  # initialised on the host first: the same start on every device
        if config.freeze_word_embeddings:
            model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
        lexicon = SpanLexicon.from_utterances(train_set)
        tagger = Tagger(
            model, tokenizer, labels, threads=config.threads, lexicon=lexicon, device=device
        )
        if out is not None:
            lexicon.save(out)

        def keep(history: list[dict[str, float]]) -> None:
            # a long run killed early still leaves its best (without selection: its latest)
            # uncalibrated model behind
            if out is not None:
                info = {"config": asdict(config), "history": history, "partial": True}
                save_checkpoint(out, model, labels, Calibration(), info)

        history, kept_step = _fit(model, tagger, train_set, valid_set, labels, config, say, keep)
        model.eval()
        tagger.calibration = calibrate(tagger, calibration_set)
        say(f"calibrated: {tagger.calibration.report}")
    finally:
        torch.set_num_threads(previous_threads)
    seconds = time.perf_counter() - started
    tagger.info = {
        "config": asdict(config),
        "history": history,
        "train_size": len(train_set),
        "valid_size": len(valid_set),
        "calibration_size": len(calibration_set),
        "kept_step": kept_step,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
    }
    if out is not None:
        save_checkpoint(out, model, labels, tagger.calibration, tagger.info)
    return TrainResult(tagger, history, seconds)


def _fit(
    model: JointModel,
    tagger: Tagger,
    train_set: Sequence[Utterance],
    valid_set: Sequence[Utterance],
    labels: Labels,
    config: TrainConfig,
    say: Progress,
    on_best: Callable[[list[dict[str, float]]], None],
) -> tuple[list[dict[str, float]], int]:
    """The evaluations made, and the step whose weights the model holds at the end."""
    device = tagger.device
    on_host = device.type == "cpu"
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total = max(1, round(config.epochs * steps_per_epoch))
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    eval_every = max(1, steps_per_epoch // max(1, config.evals_per_epoch))
    evaluating = config.evals_per_epoch > 0 and len(valid_set) > 0
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE)
    intent_ids = [labels.intent_index(u.intent) for u in train_set]
    swapper = SlotSwap.from_utterances(train_set) if config.swap_slots > 0 else None
    swap_rng = np.random.default_rng([config.seed, 1])
    embeddings = model.encoder.embeddings
    rows = None
    if embeddings.word_embeddings.weight.requires_grad:
        rows = SeenRows(embeddings.word_embeddings, _token_ids(tagger.tokenizer, train_set))
        embeddings.word_embeddings = rows
    optimizer = torch.optim.AdamW(_param_groups(model, config), lr=config.encoder_lr, fused=True)
    warmup = max(1, round(config.warmup * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))),
    )
    history: list[dict[str, float]] = []
    best: tuple[tuple[float, ...], dict[str, Any], int] | None = None
    step = 0
    started = time.perf_counter()
    running: Any = 0.0
    while step < total:
        for batch_rows in _batches(train_set, config.batch_size, rng):
            if step >= total:
                break
            model.train()
            drawn = [train_set[i] for i in batch_rows]
            if swapper is not None:
                drawn = [swapper.swap(u, config.swap_slots, swap_rng) for u in drawn]
            batch = encode(
                tagger.tokenizer,
                [u.words for u in drawn],
                tags=[labels.tag_indices(u.tags) for u in drawn],
                intents=[intent_ids[i] for i in batch_rows],
            ).to(device)
            if config.rdrop > 0:
                n = batch.input_ids.shape[0]
                loss, intent_logits, tag_logits = _batch_loss(model, batch.twice(), loss_fn, config)
                assert batch.tag_labels is not None
                words = batch.tag_labels != IGNORE
                agreement = _symmetric_kl(intent_logits[:n], intent_logits[n:]) + _symmetric_kl(
                    tag_logits[:n][words], tag_logits[n:][words]
                )
                loss = loss + config.rdrop * agreement
            else:
                loss = _batch_loss(model, batch, loss_fn, config)[0]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            # on a GPU the running loss stays there: reading it every step would make the
            # host wait for each step's kernels instead of preparing the next batch
            value = loss.item() if on_host else loss.detach()
            running = 0.98 * running + 0.02 * value if step > 1 else value
            if step % 50 == 0:
                spent = time.perf_counter() - started
                left = spent / step * (total - step)  # evaluations included, as they recur
                say(
                    f"step {step}/{total} loss {float(running):.4f} {spent:.0f}s, "
                    f"about {left / 60:.0f} min left"
                )
            if evaluating and (step % eval_every == 0 or step == total):
                model.eval()
                if rows is not None:  # evaluate, keep and save the plain, merged table
                    embeddings.word_embeddings = rows.merged()
                scores = tagger.evaluate(valid_set)
                entry = {
                    "step": step,
                    "epoch": round(step / steps_per_epoch, 4),
                    "seconds": round(time.perf_counter() - started, 1),
                }
                entry.update(scores.as_dict())
                history.append(entry)
                say(
                    f"valid @ step {step}: intent {scores.intent_accuracy:.4f} slot F1 "
                    f"{scores.slot_f1:.4f} frame {scores.frame_accuracy:.4f}"
                )
                key = (scores.frame_accuracy, scores.slot_f1, scores.intent_accuracy)
                if not config.select:
                    on_best(history)  # the latest weights are the ones kept
                elif best is None or key > best[0]:
                    best = (key, copy.deepcopy(model.state_dict()), step)
                    on_best(history)
                if rows is not None:
                    embeddings.word_embeddings = rows
    if rows is not None:
        embeddings.word_embeddings = rows.merged()
        embeddings.word_embeddings.weight.requires_grad_(True)
    if not config.select:
        return history, step
    assert best is not None
    model.load_state_dict(best[1])
    return history, best[2]


def _batch_loss(
    model: JointModel, batch: Batch, loss_fn: nn.Module, config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, intent logits, tag logits) of one training pass over ``batch``."""
    with torch.autocast(batch.input_ids.device.type, dtype=torch.bfloat16, enabled=config.bf16):
        intent_logits, tag_logits = model(batch.input_ids, batch.attention_mask)
    intent_logits, tag_logits = intent_logits.float(), tag_logits.float()
    assert batch.tag_labels is not None and batch.intent_labels is not None
    loss = loss_fn(intent_logits, batch.intent_labels) + loss_fn(
        tag_logits.reshape(-1, tag_logits.shape[-1]), batch.tag_labels.reshape(-1)
    )
    if config.crf:  # per word, so it weighs like the per-token loss
        emissions, word_tags, mask = word_emissions(tag_logits, batch)
        nll = crf_nll(emissions, word_tags, mask, model.transitions, model.start)
        loss = loss + nll / mask.sum().clamp(min=1)
    return loss, intent_logits, tag_logits


def _symmetric_kl(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Mean over rows of (KL(p‖q) + KL(q‖p)) / 2 between the softmaxes of two logit rows."""
    if first.shape[0] == 0:
        return first.new_zeros(())
    p, q = first.log_softmax(-1), second.log_softmax(-1)
    return ((p.exp() - q.exp()) * (p - q)).sum(-1).mean() / 2


class SeenRows(nn.Module):
    """A word-embedding table whose trainable part is only the rows of ``ids``.

    Rows of sub-words that training never feeds get no gradient, so training them all is the
    same fit (bar weight decay shrinking unused rows) at the cost of a dense 30k-row gradient
    and optimiser update per step. :meth:`merged` writes the trained rows back into the
    frozen table and returns it, so checkpoints keep the encoder's own layout.
    """

    def __init__(self, table: nn.Embedding, ids: torch.Tensor) -> None:
        super().__init__()
        device = table.weight.device  # the lookups run where the table is
        ids = ids.to(device)
        self.table = table.requires_grad_(False)
        self.ids = ids
        self.rows = nn.Parameter(table.weight.detach()[ids].clone())
        self.position = torch.full((table.num_embeddings,), -1, dtype=torch.long, device=device)
        self.position[ids] = torch.arange(len(ids), device=device)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        position = self.position[input_ids]
        trained = nn.functional.embedding(position.clamp(min=0), self.rows)
        return torch.where((position >= 0).unsqueeze(-1), trained, self.table(input_ids))

    def merged(self) -> nn.Embedding:
        with torch.no_grad():
            self.table.weight[self.ids] = self.rows
        return self.table


def _token_ids(tokenizer: Any, utterances: Sequence[Utterance]) -> torch.Tensor:
    """Every sub-word id that encoding ``utterances`` feeds the model, bar padding (whose row
    the encoder never trains)."""
    encoded = tokenizer([list(u.words) for u in utterances], is_split_into_words=True)
    seen = {i for ids in encoded["input_ids"] for i in ids} - {tokenizer.pad_token_id}
    return torch.tensor(sorted(seen), dtype=torch.long)


def _param_groups(model: JointModel, config: TrainConfig) -> list[dict[str, Any]]:
    """Encoder and heads at their own learning rates; no decay on biases and LayerNorms."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        head = not name.startswith("encoder.")
        decay = param.ndim > 1
        groups.setdefault((head, decay), []).append(param)
    return [
        {
            "params": params,
            "lr": config.head_lr if head else config.encoder_lr,
            "weight_decay": config.weight_decay if decay else 0.0,
        }
        for (head, decay), params in sorted(groups.items())
    ]


def _batches(data: Sequence[Utterance], size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of similar length: sort within pools of 50 batches, shuffle batches."""
    order = rng.permutation(len(data))
    pool = size * POOL_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool].tolist(), key=lambda i: len(data[i].words))
        batches.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
    return [batches[i] for i in rng.permutation(len(batches))]


# -- calibration ------------------------------------------------------------------------------
#: batches per pool sorted by length (less padding); small enough that batches stay mixed
POOL_BATCHES = 50
_GRID = np.exp(np.linspace(np.log(0.2), np.log(8.0), 241))
#: equal-width bins of the frame confidence's calibration error
FRAME_ECE_BINS = 10


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimising scikit-learn's log loss (the mean negative log-likelihood)
    of the softened softmax over a fine grid: deterministic. Computed in float64: the loss
    clips probabilities at the dtype's epsilon, which in float32 (1e-7) would cap what a
    confident mistake costs."""
    from sklearn.metrics import log_loss

    if len(logits) == 0:
        return 1.0
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.arange(logits.shape[1])
    best_t, best_nll = 1.0, math.inf
    for t in _GRID:
        nll = float(log_loss(targets, softmax(logits, float(t)), labels=labels))
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def frame_ece(correct: np.ndarray, confidence: np.ndarray) -> float:
    """The calibration error of frame confidences: ``FRAME_ECE_BINS`` equal-width bins of
    [0, 1] (:func:`segue.calibration.expected_calibration_error`, ``strategy="uniform"``)."""
    return expected_calibration_error(
        correct, confidence, n_bins=FRAME_ECE_BINS, strategy="uniform"
    )


def calibrate(tagger: Tagger, utterances: Sequence[Utterance]) -> Calibration:
    """Temperatures for intents and tags fitted on ``utterances``, with the calibration error
    of the frame confidence before and after."""
    words = [u.words for u in utterances]
    intent_logits, tag_logits = tagger.logits(words)
    labels = tagger.labels
    intent_targets = np.array([labels.intents.index(u.intent) for u in utterances])
    flat_logits = np.concatenate(tag_logits)
    flat_targets = np.concatenate([labels.tag_indices(u.tags) for u in utterances])
    tagger.calibration = Calibration()  # "before": the raw softmax, temperature 1
    raw = tagger.decode(words, intent_logits, tag_logits)
    calibration = Calibration(
        fit_temperature(intent_logits, intent_targets), fit_temperature(flat_logits, flat_targets)
    )
    tagger.calibration = calibration
    fitted = tagger.decode(words, intent_logits, tag_logits)
    correct = np.array(
        [t.intent == u.intent and t.tags == u.tags for t, u in zip(fitted, utterances, strict=True)]
    )
    calibration.report = {
        "frame_ece_before": frame_ece(correct, np.array([frame_confidence(t) for t in raw])),
        "frame_ece_after": frame_ece(correct, np.array([frame_confidence(t) for t in fitted])),
        "n": float(len(utterances)),
    }
    return calibration
