"""Trained NER models in the note pipeline, whichever backend trained them.

A `TrainedNER` is a loaded model — a spaCy NER pipeline (`entities.train_ner`) or a
fine-tuned MiniLM-L6 tagger (`transformer_ner.TransformerNER`) — with the name it is
reported by (``"ncbi_disease-minilm v2"``). `add_trained_ner` puts it in a pipeline as a
`clinical_trained_ner` component: it tags the words of each sentence (space tokens left
out) and adds its entities where they overlap no entity found before it, or only
anatomy ones (`YIELDING_LABELS`: "breast" gives way to "breast and ovarian cancer").
Every other earlier entity wins, so vocabulary problems, medications, procedures and
tests (with their concept codes) are never lost. Corpus labels become pipeline labels
by `PIPELINE_LABELS`: NCBI disease / BC5CDR ``Disease`` is a ``PROBLEM`` (problem list,
ICD-10-CM coding by description), BC5CDR ``Chemical`` a ``MEDICATION``; any other label
is kept as it is. Each entity records the model that found it in ``span._.ner_source``
(None for vocabulary entities).

`score_trained_ner` scores either backend with strict entity-level F1 and a bootstrap
interval over sentences, for the model card.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span, Token
from spacy.training import iob_to_biluo
from spacy.training.iob_utils import tags_to_entities

from clinsight.data.notes import TaggedSentence
from clinsight.errors import ModelError
from clinsight.nlp import NerBackend, Scores
from clinsight.nlp.entities import entity_scores, load_ner, tagged_to_doc

if TYPE_CHECKING:  # the MiniLM code is imported only where such a model is loaded
    from clinsight.nlp.transformer_ner import TransformerNER

__all__ = [
    "PIPELINE_LABELS",
    "WEIGHTS_FILES",
    "YIELDING_LABELS",
    "NerModel",
    "TrainedNER",
    "TrainedNERComponent",
    "add_trained_ner",
    "backend_of",
    "entity_labels",
    "load_trained_ner",
    "ner_sources",
    "save_trained_ner",
    "score_trained_ner",
    "tag_words",
]

NerModel: TypeAlias = "Language | TransformerNER"

PIPELINE_LABELS = {"Disease": "PROBLEM", "Chemical": "MEDICATION"}
"""Corpus label → pipeline label (`entities.ENTITY_LABELS`); other labels stay as they are."""
YIELDING_LABELS = frozenset({"ANATOMY"})
"""Labels of entities a trained entity replaces where they overlap (a body part inside a
disease name: "breast" in "breast and ovarian cancer"); it yields to every other one."""


WEIGHTS_FILES = {NerBackend.SPACY: "ner/model", NerBackend.MINILM: "model.safetensors"}
"""The weights file of a saved model of each backend, relative to its folder."""


@dataclass(frozen=True)
class TrainedNER:
    """A loaded NER model and the name annotations report it by."""

    model: NerModel
    source: str

    @property
    def backend(self) -> NerBackend:
        """The backend of the model."""
        return backend_of(self.model)


def backend_of(model: NerModel) -> NerBackend:
    """The backend of a trained model."""
    return NerBackend.SPACY if isinstance(model, Language) else NerBackend.MINILM


def entity_labels(model: NerModel) -> tuple[str, ...]:
    """The entity labels a model predicts (corpus labels, without B-/I-), sorted."""
    if isinstance(model, Language):
        return tuple(sorted(model.get_pipe("ner").labels))  # type: ignore[attr-defined]
    return tuple(sorted({tag[2:] for tag in model.labels if tag != "O"}))


def save_trained_ner(model: NerModel, folder: Path) -> None:
    """Write a model into `folder` (spaCy: config + msgpack; MiniLM: safetensors + tokenizer)."""
    if isinstance(model, Language):
        model.to_disk(folder)
    else:
        model.save(folder)


def load_trained_ner(folder: Path, backend: NerBackend | str, source: str) -> TrainedNER:
    """Load a model written by `save_trained_ner` (no pickle), reported as `source`.

    Raises:
        ModelError: `folder` holds no saved model of that backend.
    """
    if NerBackend(backend) is NerBackend.SPACY:
        return TrainedNER(load_ner(folder), source)
    from clinsight.nlp.transformer_ner import load_transformer_ner

    return TrainedNER(load_transformer_ner(folder), source)


def tag_words(model: NerModel, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """BIO tags (corpus labels), one per word, for each pre-tokenised sentence."""
    if not isinstance(model, Language):
        return model.tag(sentences)
    docs = model.pipe(Doc(model.vocab, words=list(words)) for words in sentences)
    return [[f"{t.ent_iob_}-{t.ent_type_}" if t.ent_type_ else "O" for t in doc] for doc in docs]


class TrainedNERComponent:
    """spaCy component adding a trained model's entities where no entity but anatomy is yet."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.model: NerModel | None = None

    def __call__(self, doc: Doc) -> Doc:
        if self.model is None:
            raise ModelError(
                f"The NER component of {self.source!r} has no model; use add_trained_ner."
            )
        sentences = [[t for t in sent if not t.is_space] for sent in doc.sents]
        sentences = [words for words in sentences if words]
        tagged = tag_words(self.model, [[t.text for t in words] for words in sentences])
        entities = list(doc.ents)
        for words, tags in zip(sentences, tagged, strict=True):
            for span in self._spans(doc, words, tags):
                overlapped = [e for e in entities if e.start < span.end and span.start < e.end]
                if all(e.label_ in YIELDING_LABELS for e in overlapped):
                    span._.ner_source = self.source  # stored by offsets: only for kept spans
                    entities = [e for e in entities if e not in overlapped] + [span]
        doc.ents = sorted(entities, key=lambda e: e.start)
        return doc

    def _spans(self, doc: Doc, words: Sequence[Token], tags: Sequence[str]) -> Iterable[Span]:
        for label, first, last in tags_to_entities(iob_to_biluo(list(tags))):
            yield Span(doc, words[first].i, words[last].i + 1, PIPELINE_LABELS.get(label, label))


if not Span.has_extension("ner_source"):
    Span.set_extension("ner_source", default=None)


@Language.factory("clinical_trained_ner", default_config={"source": ""})
def make_trained_ner(nlp: Language, name: str, source: str) -> TrainedNERComponent:
    """Factory of the component; `add_trained_ner` gives it its model."""
    return TrainedNERComponent(source or name)


def add_trained_ner(nlp: Language, trained: TrainedNER, **placement: Any) -> TrainedNERComponent:
    """Add `trained` to `nlp` as a `clinical_trained_ner` component (named after its position;
    `placement` is passed to `nlp.add_pipe`, e.g. ``before="clinical_context"``)."""
    name = f"trained_ner_{len(ner_sources(nlp)) + 1}"
    component = nlp.add_pipe(
        "clinical_trained_ner", name=name, config={"source": trained.source}, **placement
    )
    assert isinstance(component, TrainedNERComponent)
    component.model = trained.model
    return component


def ner_sources(nlp: Language) -> tuple[str, ...]:
    """The names of the trained NER models in `nlp`, in pipeline order."""
    return tuple(p.source for _, p in nlp.pipeline if isinstance(p, TrainedNERComponent))


def _sentence_counts(
    model: NerModel, sentences: Sequence[TaggedSentence]
) -> tuple[list[str], np.ndarray]:
    """The labels seen and the (tp, fp, fn) of each sentence and label: shape (n, labels, 3)."""
    blank = spacy.blank("en")
    predicted = tag_words(model, [s.tokens for s in sentences])
    scored = [
        entity_scores(
            [(tagged_to_doc(blank, s), tagged_to_doc(blank, TaggedSentence(s.tokens, tuple(tags))))]
        )
        for s, tags in zip(sentences, predicted, strict=True)
    ]
    labels = sorted({label for scores in scored for label in scores})
    counts = np.zeros((len(scored), len(labels), 3))
    for row, scores in enumerate(scored):
        for column, label in enumerate(labels):
            if label in scores:
                found = scores[label]
                counts[row, column] = (found.tp, found.fp, found.fn)
    return labels, counts


def _f1_intervals(counts: np.ndarray, n_bootstrap: int, confidence: float, seed: int) -> np.ndarray:
    """Bootstrap percentile interval of each label's F1 over resampled sentences: (labels, 2)."""
    rng = np.random.default_rng(seed)
    n = len(counts)
    drawn = np.stack([counts[rng.integers(0, n, n)].sum(0) for _ in range(n_bootstrap)])
    doubled = 2 * drawn[..., 0]
    wrong = drawn[..., 1] + drawn[..., 2]
    f1 = np.divide(doubled, doubled + wrong, out=np.zeros_like(doubled), where=doubled > 0)
    tail = 50 * (1 - confidence)
    return np.asarray(np.percentile(f1, [tail, 100 - tail], axis=0).T)


def score_trained_ner(
    model: NerModel,
    sentences: Sequence[TaggedSentence],
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Strict entity-level counts, precision, recall and F1 per label and overall (``"ALL"``),
    the F1 with a bootstrap percentile interval over sentences (``{"value", "low", "high"}``).

    Raises:
        ModelError: no sentence to score, `n_bootstrap` < 1 or `confidence` outside (0, 1).
    """
    if not sentences or n_bootstrap < 1 or not 0 < confidence < 1:
        raise ModelError(
            f"score_trained_ner needs sentences, n_bootstrap >= 1 and 0 < confidence < 1; got "
            f"{len(sentences)} sentences, {n_bootstrap}, {confidence}."
        )
    labels, counts = _sentence_counts(model, sentences)
    intervals = _f1_intervals(counts, n_bootstrap, confidence, seed)
    result: dict[str, dict[str, Any]] = {}
    for column, label in enumerate(labels):
        total = Scores(*(int(x) for x in counts[:, column].sum(0)))
        low, high = (round(float(x), 4) for x in intervals[column])
        result[label] = total.as_dict() | {
            "f1": {"value": round(total.f1, 4), "low": low, "high": high}
        }
    return result
