"""Clinical-text loaders: real files from the shared data folder, and precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinsight.data.notes import (
    ContextAnnotation,
    Mention,
    MTSample,
    NERCorpus,
    TaggedSentence,
    Temporality,
    load_context_annotations,
    load_mtsamples,
    load_ner_corpus,
    nlp_data_path,
    read_conll,
    read_pubtator,
    split_context_annotations,
    split_mtsamples,
)
from clinsight.errors import DataError, DataNotFoundError

HEADER = "line\tCondition\tsentence\tnegation\ttemporality\texperiencer\n"


def test_context_annotations_real_file(data_dir: Path) -> None:
    rows = load_context_annotations()
    assert len(rows) == 1248
    assert rows[0] == ContextAnnotation(
        line=2,
        condition="edema",
        sentence="Extremities reveal no peripheral cyanosis or EDEMA.",
        negated=True,
        temporality=Temporality.RECENT,
        experiencer="patient",
    )
    assert sum(r.negated for r in rows) == 245
    assert sum(r.temporality is Temporality.HYPOTHETICAL for r in rows) == 36
    assert sum(r.temporality is Temporality.HISTORICAL for r in rows) == 148
    assert [r.condition for r in rows if r.experiencer == "other"] == ["colon polyps"]


def _row(line: int, sentence: str) -> ContextAnnotation:
    return ContextAnnotation(line, "x", sentence, False, Temporality.RECENT, "patient")


def test_context_split_is_by_sentence_hash_and_stable() -> None:
    # SHA-256 positions: "Denies chest pain." 0.148, "Mother had breast cancer." 0.287,
    # "No fever." 0.303, "History of MI." 0.350, "HYPERTENSION." 0.785
    rows = [
        _row(2, "No fever."),
        _row(3, "HYPERTENSION."),
        _row(4, "Denies chest pain."),
        _row(5, "  Denies chest pain. "),
        _row(6, "Mother had breast cancer."),
        _row(7, "History of MI."),
    ]
    tuning, held_out = split_context_annotations(rows, held_out_fraction=0.3)
    assert [r.line for r in held_out] == [4, 5, 6]
    assert [r.line for r in tuning] == [2, 3, 7]
    assert [r.line for r in split_context_annotations(rows, 0.31)[1]] == [2, 4, 5, 6]
    assert split_context_annotations(rows[::-1], 0.3)[1] == held_out[::-1]
    with pytest.raises(ValueError, match=r"held_out_fraction must be in \(0, 1\), got 1\.0"):
        split_context_annotations(rows, 1.0)


def test_context_split_of_the_real_file(data_dir: Path) -> None:
    """Only the mechanics: the share, disjoint, complete, deterministic. Nothing of the
    held-out part is counted or read beyond its line numbers (the benchmark reads it)."""
    rows = load_context_annotations()
    tuning, held_out = split_context_annotations(rows)
    assert 0.2 < len(held_out) / len(rows) < 0.4
    assert not {r.sentence.strip() for r in tuning} & {r.sentence.strip() for r in held_out}
    assert sorted(r.line for r in tuning + held_out) == [r.line for r in rows]
    assert split_context_annotations(load_context_annotations()) == (tuning, held_out)


def test_not_particular_is_hypothetical_and_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "a.tsv"
    path.write_text(HEADER + "1\tfever\tCall for FEVER.\tAffirmed\tNot particular\tPatient\n")
    assert load_context_annotations(path)[0].temporality is Temporality.HYPOTHETICAL
    path.write_text(
        HEADER + "1\tfever\tNo FEVER.\tNegated\tRecent\tPatient\n2\tx\ty\tMaybe\tRecent\tPatient\n"
    )
    with pytest.raises(DataError, match=r"a\.tsv:3: negation 'Maybe'"):
        load_context_annotations(path)
    path.write_text(HEADER + "1\tfever\tNo FEVER.\tNegated\n")
    with pytest.raises(DataError, match=r"a\.tsv:2: expected 6 tab-separated fields, got 4"):
        load_context_annotations(path)
    with pytest.raises(DataNotFoundError, match=r"nothere\.tsv does not exist"):
        load_context_annotations(tmp_path / "nothere.tsv")


def test_missing_data_dir_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clinsight.config import get_settings

    monkeypatch.setenv("CLINSIGHT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    with pytest.raises(DataNotFoundError, match=r"nlp/mtsamples\.csv does not exist"):
        nlp_data_path("mtsamples.csv")


def test_mtsamples_dedupe_and_text_split(data_dir: Path) -> None:
    samples = load_mtsamples()
    assert len(samples) == 2357
    assert len({s.text for s in samples}) == len(samples)
    train, test = split_mtsamples(samples, test_fraction=0.2, seed=0)
    assert (len(train), len(test)) == (1886, 471)
    assert not {s.text for s in train} & {s.text for s in test}
    assert split_mtsamples(samples, seed=0)[1] == test
    multi = next(s for s in samples if len(s.specialties) > 1)
    assert multi.specialty == multi.specialties[0]


def test_mtsamples_keeps_all_specialties_of_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "description,medical_specialty,sample_name,transcription\n"
        "d, Surgery,s,Same text.\nd,Urology,s,Same text.\nd,Urology,s,  \n"
    )
    assert load_mtsamples(path) == [
        MTSample("Same text.", "Surgery", ("Surgery", "Urology"), "d", "s")
    ]
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\)"):
        split_mtsamples([], test_fraction=1.0)
    path.write_text("description,sample_name\nd,s\n")
    with pytest.raises(DataError, match=r"m\.csv:1: missing column\(s\) \['medical_specialty'"):
        load_mtsamples(path)


def test_conll_corpora_sizes(data_dir: Path) -> None:
    """Sizes of the training splits only: the test splits are read by the benchmarks."""
    ncbi = load_ner_corpus(NERCorpus.NCBI_DISEASE, "train")
    bc5 = load_ner_corpus("bc5cdr", "train")
    assert (len(ncbi), len(bc5)) == (5432, 4560)
    assert sum(t == "B-Disease" for s in ncbi for t in s.tags) == 5145
    assert {t[2:] for s in bc5 for t in s.tags if t != "O"} == {"Chemical", "Disease"}
    with pytest.raises(DataError, match="Unknown NER corpus 'i2b2'"):
        load_ner_corpus("i2b2", "test")
    with pytest.raises(DataError, match="Unknown split 'dev'"):
        load_ner_corpus("bc5cdr", "dev")


def test_read_conll_and_malformed_tag(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text("Aspirin\tx\tB-Chemical\nworks\tx\tO\n\nFever\tB-Disease\n")
    assert read_conll(path) == [
        TaggedSentence(("Aspirin", "works"), ("B-Chemical", "O")),
        TaggedSentence(("Fever",), ("B-Disease",)),
    ]
    path.write_text("Aspirin\tB-Chemical\nworks\tChem\n")
    with pytest.raises(DataError, match=r"c\.tsv:2: expected 'TOKEN<TAB>"):
        read_conll(path)


def test_read_pubtator(data_dir: Path, tmp_path: Path) -> None:
    docs = read_pubtator(nlp_data_path("ncbi_disease", "original", "NCBItestset_corpus.txt"))
    assert len(docs) == 100
    assert sum(len(d.mentions) for d in docs) == 960
    assert all(d.text[m.start : m.end] == m.text for d in docs for m in d.mentions)
    path = tmp_path / "p.txt"
    path.write_text("1|t|Fever.\n1|a|No rash.\n1\t0\t5\tFever\tDisease\tD1\n1\tCID\tD1\tD2\n")
    assert read_pubtator(path)[0].mentions == (Mention(0, 5, "Fever", "Disease", "D1"),)
    path.write_text("1|t|Fever.\n1|a|No rash.\n1\tzero\t5\tFever\tDisease\n")
    with pytest.raises(DataError, match=r"p\.txt:3: malformed mention line"):
        read_pubtator(path)


def test_mtsamples_keeps_the_note_id_of_every_copy(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "note_id,description,medical_specialty,sample_name,transcription\n"
        "7,d,Surgery,s,Same text.\n12,d,Urology,s,Same text.\n"
    )
    assert [s.note_ids for s in load_mtsamples(path)] == [("7", "12")]
