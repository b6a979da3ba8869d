"""Transformer NER: the bundled all-MiniLM-L6-v2 encoder fine-tuned for BIO token tagging.

A second NER backend beside the spaCy CNN of `entities`. Each word is labelled on its
first word piece; the other pieces, and the special tokens, are left out of the loss
and of prediction. Training is AdamW with a linear warm-up then linear decay, seeded,
on CPU; with a devel set the strict entity F1 is measured after every epoch and the
weights of the best epoch are kept, and a time budget ends training cleanly after the
step that passes it. A model is saved as Hugging Face files (config, tokenizer and
`model.safetensors`, no pickle) plus `ner.json`. Scores come from `entity_scores`, the
same strict entity-level scoring as the spaCy NER.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import spacy
import torch
from spacy.tokens import Doc
from spacy.training import biluo_tags_to_spans, iob_to_biluo

from clinsight.data.notes import TaggedSentence
from clinsight.errors import ModelError
from clinsight.nlp import Scores
from clinsight.nlp.embeddings import (
    MODEL_NAME,
    switch_hugging_face_offline,
    verified_model_dir,
)
from clinsight.nlp.entities import ProgressCallback, StepBudget, entity_scores, tagged_to_doc

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "EncodedSentence",
    "TransformerNER",
    "encode_sentences",
    "evaluate_transformer_ner",
    "load_transformer_ner",
    "train_transformer_ner",
]

IGNORED = -100  # label of the pieces the loss skips (PyTorch's cross-entropy default)
MAX_LENGTH = 512  # the encoder's position limit, in word pieces with [CLS] and [SEP]
META_FILE = "ner.json"
_LENGTH_GROUP = 50  # batches per pool whose sentences are sorted by length before batching


@dataclass(frozen=True)
class EncodedSentence:
    """Word-piece ids of one sentence and where each word's first piece is (None: the word
    has no piece, e.g. a control character, or was cut off at `max_length`)."""

    input_ids: tuple[int, ...]
    first_pieces: tuple[int | None, ...]

    def piece_labels(self, label_ids: Sequence[int]) -> list[int]:
        """One label per piece: the word's label on its first piece, `IGNORED` elsewhere."""
        labels = [IGNORED] * len(self.input_ids)
        for position, label in zip(self.first_pieces, label_ids, strict=True):
            if position is not None:
                labels[position] = label
        return labels


def encode_sentences(
    tokenizer: PreTrainedTokenizerBase, sentences: Sequence[Sequence[str]], max_length: int
) -> list[EncodedSentence]:
    """Word pieces of pre-tokenised sentences, cut to `max_length` (special tokens included).

    Raises:
        ModelError: `max_length` is outside 8..512.
    """
    if not 8 <= max_length <= MAX_LENGTH:
        raise ModelError(f"max_length must be in 8..{MAX_LENGTH} word pieces; got {max_length}.")
    if not sentences:
        return []
    encoding = tokenizer(
        [list(words) for words in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
    )
    encoded = []
    for i, words in enumerate(sentences):
        first: list[int | None] = [None] * len(words)
        for position, word in enumerate(encoding.word_ids(i)):
            if word is not None and first[word] is None:
                first[word] = position
        encoded.append(EncodedSentence(tuple(encoding["input_ids"][i]), tuple(first)))
    return encoded


def _padded(rows: Sequence[Sequence[int]], pad: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([list(row) + [pad] * (width - len(row)) for row in rows])


class TransformerNER:
    """A fine-tuned token-classification encoder with its tokenizer: tags pre-tokenised
    sentences (`tag`) or raw text (`__call__`, words from spaCy's English tokenizer).

    `training` records how it was trained (epochs, the epoch kept, devel F1, time).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int = MAX_LENGTH,
        training: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.training = dict(training or {})
        id2label = cast(dict[int, str], model.config.id2label)
        self.labels = tuple(id2label[i] for i in range(len(id2label)))
        self.nlp = spacy.blank("en")

    def tag(self, sentences: Sequence[Sequence[str]], batch_size: int = 64) -> list[list[str]]:
        """BIO tags, one per word, for each sentence (a word without a piece, or past
        `max_length` pieces, gets "O")."""
        encoded = encode_sentences(self.tokenizer, sentences, self.max_length)
        tags: list[list[str]] = [["O"] * len(words) for words in sentences]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
        self.model.train(False)
        with torch.no_grad():
            for first in range(0, len(order), batch_size):
                batch = order[first : first + batch_size]
                ids = _padded([encoded[i].input_ids for i in batch], self.pad_id)
                logits = self.model(input_ids=ids, attention_mask=(ids != self.pad_id)).logits
                best = logits.argmax(-1).tolist()
                for row, i in enumerate(batch):
                    for word, position in enumerate(encoded[i].first_pieces):
                        if position is not None:
                            tags[i][word] = self.labels[best[row][position]]
        return tags

    def __call__(self, text: str) -> Doc:
        """`text` as a spaCy Doc with the predicted entities in `doc.ents`."""
        doc = self.nlp(text)
        (tags,) = self.tag([[token.text for token in doc]])
        doc.ents = biluo_tags_to_spans(doc, iob_to_biluo(tags))
        return doc

    def save(self, path: Path) -> None:
        """Write config, tokenizer, `model.safetensors` and `ner.json` into folder `path`."""
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        meta = {"base_model": MODEL_NAME, "max_length": self.max_length, "training": self.training}
        (path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @property
    def pad_id(self) -> int:
        """The id of the padding piece."""
        return int(self.tokenizer.pad_token_id)


def load_transformer_ner(path: Path) -> TransformerNER:
    """Load a model saved with `TransformerNER.save` (safetensors weights only, offline).

    Raises:
        ModelError: `path` holds no `ner.json` or no `model.safetensors`.
    """
    for name in (META_FILE, "model.safetensors"):
        if not (path / name).is_file():
            raise ModelError(f"{path} is not a saved transformer NER (no {name}); train one first.")
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    switch_hugging_face_offline()
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(
        path, local_files_only=True, use_safetensors=True
    )
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return TransformerNER(
        model, tokenizer, max_length=int(meta["max_length"]), training=meta["training"]
    )


def evaluate_transformer_ner(
    ner: TransformerNER, sentences: Iterable[TaggedSentence]
) -> dict[str, Scores]:
    """Strict entity-level scores per label and overall (`"ALL"`), as `evaluate_ner` gives."""
    sentences = list(sentences)
    predicted = ner.tag([s.tokens for s in sentences])
    return entity_scores(
        (tagged_to_doc(ner.nlp, s), tagged_to_doc(ner.nlp, TaggedSentence(s.tokens, tuple(tags))))
        for s, tags in zip(sentences, predicted, strict=True)
    )


def _fresh_model(labels: Sequence[str], max_length: int) -> TransformerNER:
    """The bundled encoder with a new, randomly initialised tagging head over `labels`."""
    model_dir = verified_model_dir()
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.ERROR)  # the load report lists the new head as "missing"
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            model_dir,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            local_files_only=True,
            use_safetensors=True,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return TransformerNER(model, tokenizer, max_length=max_length)


def _length_grouped(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of indices, each of sentences of similar length (less padding)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * _LENGTH_GROUP
    batches = []
    for first in range(0, len(order), pool):
        part = sorted(order[first : first + pool], key=lengths.__getitem__)
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def _optimizer(
    model: torch.nn.Module, learning_rate: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases and LayerNorm weights (the BERT recipe)."""
    decayed: list[torch.nn.Parameter] = []
    plain: list[torch.nn.Parameter] = []
    for name, parameter in model.named_parameters():
        (plain if name.endswith("bias") or "LayerNorm" in name else decayed).append(parameter)
    groups = [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=learning_rate)


def _linear_warmup_decay(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_transformer_ner(
    train: Sequence[TaggedSentence],
    *,
    devel: Sequence[TaggedSentence] | None = None,
    epochs: int = 4,
    batch_size: int = 16,
    learning_rate: float = 1e-4,
    warmup_fraction: float = 0.1,
    weight_decay: float = 0.01,
    max_length: int = MAX_LENGTH,
    time_budget: float | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> TransformerNER:
    """Fine-tune the bundled MiniLM-L6 encoder on BIO-tagged sentences (seeded, CPU).

    The learning rate rises linearly over the first `warmup_fraction` of the planned
    steps (`epochs` passes) and then falls linearly to 0. With `devel`, the strict F1 on
    it is measured after each epoch and the best epoch's weights are kept. Training stops
    after the step that passes `time_budget` seconds (that part-epoch is scored on devel
    like the others) or `max_steps` updates. `progress(epoch, mean loss, devel_f1)` is
    called after each epoch; `ner.training` records what happened.

    Raises:
        ModelError: `train` holds no entity, or a setting is out of range.
        DataError: a sentence's tags are not a valid BIO sequence.
    """
    if epochs < 1 or batch_size < 1 or learning_rate <= 0 or not 0 <= warmup_fraction < 1:
        raise ModelError(
            "train_transformer_ner needs epochs >= 1, batch_size >= 1, learning_rate > 0 and "
            f"warmup_fraction in [0, 1); got {epochs}, {batch_size}, {learning_rate}, "
            f"{warmup_fraction}."
        )
    blank = spacy.blank("en")
    entity_labels = sorted({e.label_ for s in train for e in tagged_to_doc(blank, s).ents})
    if not entity_labels:
        raise ModelError("train_transformer_ner needs sentences with at least one B-/I- entity.")
    labels = ["O"] + [f"{prefix}-{label}" for label in entity_labels for prefix in "BI"]
    torch.manual_seed(seed)
    ner = _fresh_model(labels, max_length)
    encoded = encode_sentences(ner.tokenizer, [s.tokens for s in train], max_length)
    index = {label: i for i, label in enumerate(labels)}
    targets = [
        e.piece_labels([index[t] for t in s.tags]) for e, s in zip(encoded, train, strict=True)
    ]
    lengths = [len(e.input_ids) for e in encoded]
    steps_per_epoch = math.ceil(len(train) / batch_size)
    planned = epochs * steps_per_epoch
    optimizer = _optimizer(ner.model, learning_rate, weight_decay)
    schedule = _linear_warmup_decay(optimizer, round(warmup_fraction * planned), planned)
    rng = random.Random(seed)
    budget = StepBudget(max_steps, time_budget)
    epochs_run, best_f1, best_epoch = 0, -1.0, 0
    best_weights: dict[str, torch.Tensor] = {}
    stopped_by = None
    while epochs_run < epochs and stopped_by is None:
        ner.model.train()
        losses = []
        for batch in _length_grouped(lengths, batch_size, rng):
            ids = _padded([encoded[i].input_ids for i in batch], ner.pad_id)
            gold = _padded([targets[i] for i in batch], IGNORED)
            loss = ner.model(input_ids=ids, attention_mask=(ids != ner.pad_id), labels=gold).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ner.model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            stopped_by = budget.spend()
            if stopped_by is not None:
                break
        epochs_run += 1
        devel_f1 = None
        if devel is not None:
            devel_f1 = evaluate_transformer_ner(ner, devel)["ALL"].f1
            if devel_f1 > best_f1:
                best_f1, best_epoch = devel_f1, epochs_run
                best_weights = {k: v.detach().clone() for k, v in ner.model.state_dict().items()}
        if progress is not None:
            progress(epochs_run - 1, sum(losses) / len(losses), devel_f1)
    if best_weights:
        ner.model.load_state_dict(best_weights)
    ner.training = {
        "epochs_run": epochs_run,
        "kept_epoch": best_epoch if devel is not None else epochs_run,
        "devel_f1": round(best_f1, 4) if devel is not None else None,
        "steps": budget.steps,
        "planned_steps": planned,
        "stopped_by": stopped_by,
        "longest_sentence_pieces": max(lengths),
        "words_without_piece": sum(p is None for e in encoded for p in e.first_pieces),
    }
    return ner
