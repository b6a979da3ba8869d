"""Specialty labels, TF-IDF and embedding classifiers, skops persistence."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import skops.io
import torch
from sklearn.base import BaseEstimator

from clinsight.config import get_settings
from clinsight.data.notes import MTSample, load_mtsamples, split_mtsamples
from clinsight.errors import DataError, ModelError
from clinsight.nlp.classify import (
    OTHER,
    SpecialtyClassifier,
    SpecialtyPrediction,
    classify_note,
    labelled_notes,
    load_classifier,
    load_or_train_classifier,
    save_classifier,
    specialty_label,
    specialty_model_path,
)

TEMPLATES = {
    "Cardiology": [
        "Echocardiogram shows reduced ejection fraction and mitral regurgitation.",
        "Cardiac catheterization revealed coronary artery stenosis; stent placed.",
        "Atrial fibrillation with rapid ventricular response, started on diltiazem.",
    ],
    "Orthopedic": [
        "Right knee arthroscopy with partial medial meniscectomy.",
        "Open reduction internal fixation of the distal radius fracture.",
        "Total hip arthroplasty for severe osteoarthritis of the hip joint.",
    ],
    "Urology": [
        "Cystoscopy showed bladder tumor; transurethral resection performed.",
        "Vasectomy performed under local anesthesia, vas deferens ligated.",
        "Prostate biopsy for elevated PSA, benign prostatic hyperplasia noted.",
    ],
}
VOCABULARY = {
    "Cardiology": "Cardiac heart coronary follow-up.",
    "Orthopedic": "Bone joint fracture follow-up.",
    "Urology": "Bladder prostate urinary follow-up.",
}
PATIENTS = ("A 54-year-old man.", "A 61-year-old woman.")


def corpus() -> tuple[list[str], list[str]]:
    """Six notes per specialty (3 templates x 2 openings), each with its specialty's words."""
    texts, labels = [], []
    for specialty, sentences in TEMPLATES.items():
        for sentence in sentences:
            for opening in PATIENTS:
                texts.append(f"{opening} {sentence} {VOCABULARY[specialty]}")
                labels.append(specialty)
    return texts, labels


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sample(*specialties: str) -> MTSample:
    return MTSample("text", specialties[0], specialties, "", "")


@pytest.mark.parametrize(
    ("specialties", "label"),
    [
        (("Surgery", "Orthopedic"), "Orthopedic"),
        (("Surgery", "Orthopedic", "Neurosurgery"), "Orthopedic"),
        (("General Medicine", "Consult - History and Phy."), "General Medicine"),
        (("SOAP / Chart / Progress Notes", "General Medicine", "Nephrology"), "Nephrology"),
        (("Discharge Summary", "Surgery"), "Surgery"),
        (("Radiology", "Neurology"), "Radiology"),
        (("Letters", "Office Notes"), None),
    ],
)
def test_specialty_label_prefers_a_specific_clinical_specialty(
    specialties: tuple[str, ...], label: str | None
) -> None:
    assert specialty_label(specialties) == label


def test_labelled_notes_leaves_out_notes_filed_only_under_document_types() -> None:
    notes = [sample("Surgery", "Urology"), sample("Letters"), sample("Dermatology")]
    assert labelled_notes(notes) == (["text", "text"], ["Urology", "Dermatology"])


def test_mtsamples_labels_on_the_text_disjoint_split(data_dir: Path) -> None:
    train, test = split_mtsamples(load_mtsamples(data_dir / "nlp" / "mtsamples.csv"))
    train_texts, train_labels = labelled_notes(train)
    test_texts, _ = labelled_notes(test)
    assert (len(train_texts), len(test_texts)) == (1865, 465)
    assert not set(train_texts) & set(test_texts)
    counts = Counter(train_labels)
    assert sum(n >= 20 for n in counts.values()) == 20
    assert counts.most_common(2) == [("Cardiovascular / Pulmonary", 219), ("Radiology", 212)]


def test_tfidf_classifier_learns_specialties_and_groups_rare_ones() -> None:
    texts, labels = corpus()
    rare = {
        "Dermatology": "A 40-year-old woman. Excision of a benign skin lesion on the forearm.",
        "Psychiatry": "A 35-year-old man. Major depressive disorder, sertraline increased.",
        "Ophthalmology": "A 70-year-old woman. Cataract extraction with lens implant.",
    }
    without_other = SpecialtyClassifier("tfidf", min_count=3).fit(
        [*texts, rare["Dermatology"]], [*labels, "Dermatology"]
    )
    assert list(without_other.classes_) == ["Cardiology", "Orthopedic", "Urology"]
    classifier = SpecialtyClassifier("tfidf", min_count=3).fit(
        [*texts, *rare.values()], [*labels, *rare]
    )
    assert classifier.specialties_ == ["Cardiology", "Orthopedic", "Urology"]
    assert list(classifier.classes_) == ["Cardiology", "Orthopedic", OTHER, "Urology"]
    new = [
        "Echocardiogram of the heart: ejection fraction 35%, coronary disease.",
        "Fracture of the radius bone treated with internal fixation.",
        "Transurethral resection of a bladder tumor, urinary retention.",
        "Depression treated with sertraline.",
    ]
    assert list(classifier.predict(new)) == ["Cardiology", "Orthopedic", "Urology", OTHER]
    probs = classifier.predict_proba(new)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert classify_note(new[0], classifier, top=2) == [
        SpecialtyPrediction("Cardiology", float(probs[0, 0])),
        SpecialtyPrediction(OTHER, float(probs[0, 2])),
    ]


def test_embedding_classifier_learns_specialties_and_round_trips(tmp_path: Path) -> None:
    texts, labels = corpus()
    classifier = SpecialtyClassifier("embedding", min_count=3).fit(texts, labels)
    new = ["Heart ultrasound with low ejection fraction.", "Bladder cancer resected."]
    assert list(classifier.predict(new)) == ["Cardiology", "Urology"]
    loaded = load_classifier(save_classifier(classifier, tmp_path / "embedding.skops"))
    np.testing.assert_array_equal(loaded.predict_proba(new), classifier.predict_proba(new))


def test_classifier_survives_a_skops_round_trip(tmp_path: Path) -> None:
    texts, labels = corpus()
    classifier = SpecialtyClassifier("tfidf", min_count=3).fit(texts, labels)
    path = save_classifier(classifier, tmp_path / "models" / "specialty.skops")
    loaded = load_classifier(path)
    np.testing.assert_array_equal(loaded.predict_proba(texts), classifier.predict_proba(texts))


class Intruder(BaseEstimator):  # type: ignore[misc]
    """A type no trusted list names."""


def test_loading_refuses_untrusted_types_and_other_objects(tmp_path: Path) -> None:
    skops.io.dump(Intruder(), tmp_path / "intruder.skops")
    with pytest.raises(ModelError, match=r"outside the trusted list: .*Intruder"):
        load_classifier(tmp_path / "intruder.skops")
    skops.io.dump({"model": [1, 2]}, tmp_path / "dict.skops")
    with pytest.raises(ModelError, match="holds a dict, not a SpecialtyClassifier"):
        load_classifier(tmp_path / "dict.skops")
    (tmp_path / "junk.skops").write_bytes(b"junk")
    with pytest.raises(ModelError, match="not a readable skops file"):
        load_classifier(tmp_path / "junk.skops")
    with pytest.raises(ModelError, match="No specialty model at"):
        load_classifier(tmp_path / "absent.skops")


def test_load_or_train_trains_once_on_mtsamples_then_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nlp = tmp_path / "data" / "nlp"
    nlp.mkdir(parents=True)
    with (nlp / "mtsamples.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["description", "medical_specialty", "sample_name", "transcription"])
        for specialty, words in (("Urology", "bladder prostate"), ("Dermatology", "skin rash")):
            for i in range(20):
                writer.writerow(["", specialty, "", f"Note {i}: {words} finding number {i}."])
    monkeypatch.setenv("CLINSIGHT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    trained = load_or_train_classifier("tfidf")
    assert specialty_model_path().is_file()
    assert list(trained.classes_) == ["Dermatology", "Urology"]
    (nlp / "mtsamples.csv").unlink()
    loaded = load_or_train_classifier("tfidf")
    query = "prostate and bladder"
    np.testing.assert_array_equal(loaded.predict_proba([query]), trained.predict_proba([query]))
    [top] = classify_note(query, loaded, top=1)
    assert top == SpecialtyPrediction("Urology", float(trained.predict_proba([query])[0, 1]))


def test_invalid_fits_and_inputs_are_refused() -> None:
    texts, labels = corpus()
    with pytest.raises(ModelError, match="kind must be 'tfidf' or 'embedding'"):
        SpecialtyClassifier("bag-of-words").fit(texts, labels)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="Need min_count >= 3"):
        SpecialtyClassifier(min_count=2).fit(texts, labels)
    with pytest.raises(ModelError, match="c > 0"):
        SpecialtyClassifier(min_count=3, c=0.0).fit(texts, labels)
    with pytest.raises(DataError, match="Got 18 texts but 2 labels"):
        SpecialtyClassifier(min_count=3).fit(texts, labels[:2])
    with pytest.raises(DataError, match="Fewer than two classes have 7 or more notes"):
        SpecialtyClassifier(min_count=7).fit(texts, labels)
    with pytest.raises(ModelError, match="not fitted; call fit"):
        SpecialtyClassifier().predict(["a note"])
    with pytest.raises(ModelError, match="Only a fitted SpecialtyClassifier"):
        save_classifier(SpecialtyClassifier(), Path("unused.skops"))
    fitted = SpecialtyClassifier(min_count=3).fit(texts, labels)
    with pytest.raises(DataError, match="The note is empty"):
        classify_note("  ", fitted)
