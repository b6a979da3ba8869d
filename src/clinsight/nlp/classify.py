"""Specialty classification of a clinical note (trained on MTSamples).

Labels. MTSamples files many transcriptions under several categories (an operative
note under "Surgery" and "Orthopedic"), and some categories are document types, not
specialties. `specialty_label` therefore drops the `DOCUMENT_TYPES` (consults, discharge
summaries, SOAP/progress notes, letters, office notes, IME/work-comp reports), prefers a
specific specialty to the catch-alls in `GENERIC_SPECIALTIES` ("Surgery", "General
Medicine"), and keeps the first remaining one in file order; a note filed only under
document types has no label and is left out. At fit time, specialties with fewer than
`min_count` training notes become `OTHER`, itself left out when it gathers fewer than
`min_count` notes, so every class of the model has at least `min_count` examples.

Models. ``kind="tfidf"``: word 1-2-gram and character 3-5-gram TF-IDF, a class-balanced
LinearSVC, sigmoid-calibrated (3-fold) for probabilities. ``kind="embedding"``:
all-MiniLM-L6-v2 sentence embeddings (`SentenceEncoder`) and a class-balanced logistic
regression. Both persist with skops, loaded against the fixed `TRUSTED_TYPES` list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from clinsight.config import get_settings
from clinsight.data.notes import MTSample, load_mtsamples
from clinsight.errors import DataError, ModelError
from clinsight.nlp.embeddings import SentenceEncoder

__all__ = [
    "DOCUMENT_TYPES",
    "GENERIC_SPECIALTIES",
    "OTHER",
    "TRUSTED_TYPES",
    "ClassifierKind",
    "SpecialtyClassifier",
    "SpecialtyPrediction",
    "classify_note",
    "labelled_notes",
    "load_classifier",
    "load_or_train_classifier",
    "save_classifier",
    "specialty_label",
    "specialty_model_path",
]

ClassifierKind = Literal["tfidf", "embedding"]
OTHER = "Other"
DOCUMENT_TYPES = frozenset(
    {
        "Consult - History and Phy.",
        "Discharge Summary",
        "IME-QME-Work Comp etc.",
        "Letters",
        "Office Notes",
        "SOAP / Chart / Progress Notes",
    }
)
GENERIC_SPECIALTIES = frozenset({"Surgery", "General Medicine"})
# Chosen by 3-fold CV macro-F1 on the MTSamples training split (tfidf: 0.1 / 0.5 / 2;
# embedding: 1 / 3 / 10 / 30 / 100), never on the test split.
_DEFAULT_C: dict[str, float] = {"tfidf": 0.5, "embedding": 10.0}
# Types skops does not trust by itself that a saved SpecialtyClassifier may hold.
TRUSTED_TYPES = (
    "clinsight.nlp.classify.SpecialtyClassifier",
    "clinsight.nlp.embeddings.SentenceEncoder",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)


@dataclass(frozen=True)
class SpecialtyPrediction:
    """One candidate specialty of a note and its calibrated probability."""

    specialty: str
    probability: float


def specialty_label(specialties: Sequence[str]) -> str | None:
    """The most specific clinical specialty among the categories a note was filed under.

    Document types are dropped, generic categories yield to specific ones, file order
    breaks ties; None when only document types remain.
    """
    clinical = [s for s in specialties if s not in DOCUMENT_TYPES]
    specific = [s for s in clinical if s not in GENERIC_SPECIALTIES]
    chosen = specific or clinical
    return chosen[0] if chosen else None


def labelled_notes(samples: Sequence[MTSample]) -> tuple[list[str], list[str]]:
    """Texts and `specialty_label`s of the samples that have one."""
    pairs = [(s.text, specialty_label(s.specialties)) for s in samples]
    kept = [(text, label) for text, label in pairs if label is not None]
    return [text for text, _ in kept], [label for _, label in kept]


def _tfidf_model(c: float, seed: int) -> Pipeline:
    features = FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True)),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(3, 5),
                    min_df=3,
                    sublinear_tf=True,
                    max_features=150_000,
                ),
            ),
        ]
    )
    svm = LinearSVC(C=c, class_weight="balanced", random_state=seed)
    return Pipeline([("features", features), ("classifier", CalibratedClassifierCV(svm, cv=3))])


def _embedding_model(c: float, seed: int, max_seq_length: int) -> Pipeline:
    logistic = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=seed)
    return Pipeline(
        [("embed", SentenceEncoder(max_seq_length=max_seq_length)), ("classifier", logistic)]
    )


class SpecialtyClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Note text → specialty, with rare specialties grouped under `OTHER` at fit time.

    `c` is the inverse regularisation strength (scikit-learn's ``C``; None: 0.5 for
    tfidf, 10 for embedding); `max_seq_length` bounds the word pieces embedded per note.
    """

    def __init__(
        self,
        kind: ClassifierKind = "tfidf",
        *,
        min_count: int = 20,
        c: float | None = None,
        max_seq_length: int = 128,
        seed: int = 0,
    ) -> None:
        self.kind = kind
        self.min_count = min_count
        self.c = c
        self.max_seq_length = max_seq_length
        self.seed = seed

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> SpecialtyClassifier:
        """Group rare specialties, then fit the chosen model.

        Raises:
            ModelError: unknown `kind`, `min_count` below 3 or `c` not positive.
            DataError: texts and labels differ in length, or fewer than two classes remain.
        """
        if self.kind not in _DEFAULT_C:
            raise ModelError(f"kind must be 'tfidf' or 'embedding'; got {self.kind!r}.")
        if self.min_count < 3 or (self.c is not None and self.c <= 0):
            raise ModelError(
                f"Need min_count >= 3 (3-fold calibration) and c > 0; "
                f"got min_count={self.min_count}, c={self.c}."
            )
        if len(texts) != len(labels):
            raise DataError(f"Got {len(texts)} texts but {len(labels)} labels; pass one each.")
        counts = Counter(labels)
        self.specialties_ = sorted(s for s, n in counts.items() if n >= self.min_count)
        known = set(self.specialties_)
        grouped = [label if label in known else OTHER for label in labels]
        enough_other = grouped.count(OTHER) >= self.min_count
        pairs = [(t, g) for t, g in zip(texts, grouped, strict=True) if g != OTHER or enough_other]
        if len(known) + enough_other < 2:
            raise DataError(
                f"Fewer than two classes have {self.min_count} or more notes "
                f"({dict(counts)}); add notes or lower min_count."
            )
        c = self.c if self.c is not None else _DEFAULT_C[self.kind]
        model = (
            _tfidf_model(c, self.seed)
            if self.kind == "tfidf"
            else _embedding_model(c, self.seed, self.max_seq_length)
        )
        self.model_ = model.fit([t for t, _ in pairs], [g for _, g in pairs])
        self.classes_: NDArray[np.str_] = np.asarray(self.model_.classes_, dtype=str)
        return self

    def predict_proba(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Probabilities (n, len(classes_)), rows summing to 1.

        Raises:
            ModelError: the classifier is not fitted.
        """
        if not hasattr(self, "model_"):
            raise ModelError("This SpecialtyClassifier is not fitted; call fit() first.")
        return np.asarray(self.model_.predict_proba(list(texts)), dtype=np.float64)

    def predict(self, texts: Sequence[str]) -> NDArray[np.str_]:
        """The most probable specialty of each text.

        Raises:
            ModelError: the classifier is not fitted.
        """
        probs = self.predict_proba(texts)
        return np.asarray(self.classes_[probs.argmax(axis=1)], dtype=str)


def classify_note(
    text: str, classifier: SpecialtyClassifier, top: int = 3
) -> list[SpecialtyPrediction]:
    """The `top` most probable specialties of one note, most probable first.

    Raises:
        DataError: the note is empty.
        ModelError: the classifier is not fitted.
    """
    if not text.strip():
        raise DataError("The note is empty; pass the note's text.")
    probs = classifier.predict_proba([text])[0]
    order = np.argsort(-probs, kind="stable")[: max(top, 1)]
    return [SpecialtyPrediction(str(classifier.classes_[i]), float(probs[i])) for i in order]


def save_classifier(classifier: SpecialtyClassifier, path: Path) -> Path:
    """Write a fitted classifier as a skops file (data only, no pickle).

    Raises:
        ModelError: the classifier is not fitted.
    """
    import skops.io

    if not hasattr(classifier, "model_"):
        raise ModelError("Only a fitted SpecialtyClassifier can be saved; call fit() first.")
    path.parent.mkdir(parents=True, exist_ok=True)
    skops.io.dump(classifier, path)
    return path


def load_classifier(path: Path) -> SpecialtyClassifier:
    """Read a classifier written by `save_classifier`, refusing any type not in `TRUSTED_TYPES`.

    Raises:
        ModelError: the file is missing, unreadable, holds an untrusted type or no classifier.
    """
    import skops.io

    if not path.is_file():
        raise ModelError(f"No specialty model at {path}; train one with load_or_train_classifier.")
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:
        raise ModelError(f"{path} is not a readable skops file ({exc}).") from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise ModelError(f"{path} holds types outside the trusted list: {', '.join(refused)}.")
    model = skops.io.load(path, trusted=list(untrusted))
    if not isinstance(model, SpecialtyClassifier):
        raise ModelError(f"{path} holds a {type(model).__name__}, not a SpecialtyClassifier.")
    return model


def specialty_model_path(kind: ClassifierKind = "tfidf") -> Path:
    """Where the default specialty model of `kind` is kept: HOME/models/specialty-KIND.skops."""
    return get_settings().home / "models" / f"specialty-{kind}.skops"


def load_or_train_classifier(
    kind: ClassifierKind = "tfidf", path: Path | None = None
) -> SpecialtyClassifier:
    """The saved specialty model at `path` (default `specialty_model_path(kind)`), or, when
    there is none, one trained on every labelled MTSamples note and saved there.

    Raises:
        ModelError: the saved file cannot be trusted or read; see `load_classifier`.
        DataNotFoundError: no saved model and no MTSamples file to train on.
    """
    path = path if path is not None else specialty_model_path(kind)
    if path.is_file():
        return load_classifier(path)
    texts, labels = labelled_notes(load_mtsamples())
    classifier = SpecialtyClassifier(kind).fit(texts, labels)
    save_classifier(classifier, path)
    return classifier
