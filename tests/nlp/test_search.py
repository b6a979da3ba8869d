"""Keyword (BM25), semantic and hybrid search over a patient's notes, with snippets."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from clinsight.errors import DataError
from clinsight.nlp.search import NoteIndex, highlight, search_notes, terms

NOTES = {
    "n1": "Patient reports chest pain radiating to the left arm. ECG shows ST elevation. "
    "Troponin is elevated.",
    "n2": "Follow-up for type 2 diabetes. HbA1c improved to 7.1%. Continue metformin 500 mg "
    "twice daily.",
    "n3": "Knee pain after a fall on ice. X-ray shows no fracture. Ibuprofen for pain as needed.",
    "n4": "Shortness of breath and wheezing. Asthma exacerbation treated with albuterol "
    "nebulizers.",
    "n5": "Annual visit. Blood pressure 150/95, hypertension not controlled; increase lisinopril.",
}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def index() -> NoteIndex:
    return NoteIndex(NOTES)


def ranking(index: NoteIndex, query: str, mode: str, limit: int = 10) -> list[str]:
    return [hit.note_id for hit in index.search(query, mode, limit)]  # type: ignore[arg-type]


def test_terms_drop_stop_words_and_plural_s_with_offsets() -> None:
    assert terms("The fractures of both ribs; diagnosis: class II.") == [
        ("fracture", 4, 13),
        ("rib", 22, 26),
        ("diagnosis", 28, 37),
        ("class", 39, 44),
        ("ii", 45, 47),
    ]


def test_bm25_score_matches_the_formula() -> None:
    scores = NoteIndex({"a": "fever", "b": "cough"}).keyword_scores("fever")
    # idf = ln(1 + (2 - 1 + 0.5) / (1 + 0.5)) = ln 2; tf = 1 at average length: factor 1.
    assert scores.tolist() == pytest.approx([math.log(2), 0.0])


def test_keyword_rankings(index: NoteIndex) -> None:
    assert ranking(index, "chest pain", "keyword") == ["n1", "n3"]
    assert ranking(index, "pain", "keyword") == ["n3", "n1"]
    assert ranking(index, "fractures", "keyword") == ["n3"]
    assert ranking(index, "blood pressure medicine", "keyword") == ["n5"]
    assert ranking(index, "the of and", "keyword") == []
    assert ranking(index, "chest pain", "keyword", limit=1) == ["n1"]


def test_semantic_search_finds_notes_without_shared_words(index: NoteIndex) -> None:
    assert ranking(index, "heart attack", "semantic", limit=1) == ["n1"]
    assert ranking(index, "breathing difficulty", "semantic", limit=1) == ["n4"]
    assert ranking(index, "high blood sugar", "semantic", limit=1) == ["n2"]
    assert ranking(index, "painkillers for knee injury", "semantic", limit=1) == ["n3"]


def test_hybrid_fuses_the_two_rankings_by_reciprocal_rank(index: NoteIndex) -> None:
    hits = index.search("high blood sugar", "hybrid", limit=2)
    # n5: keyword rank 1 ("blood") and semantic rank 2; n2: semantic rank 1 only.
    assert [(h.note_id, h.rank) for h in hits] == [("n5", 1), ("n2", 2)]
    assert hits[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert hits[1].score == pytest.approx(1 / 61)
    assert ranking(index, "chest pain", "hybrid", limit=2) == ["n1", "n3"]


def test_hits_carry_highlighted_snippets_with_note_offsets(index: NoteIndex) -> None:
    [hit] = index.search("chest pain", "keyword", limit=1)
    assert (hit.start, hit.end) == (0, len(NOTES["n1"]))
    assert hit.highlights == ((16, 21), (22, 26))
    assert [NOTES["n1"][s:e] for s, e in hit.highlights] == ["chest", "pain"]
    assert hit.snippet_html.startswith("Patient reports <mark>chest</mark> <mark>pain</mark> ")


def test_snippet_is_the_passage_with_the_query_terms() -> None:
    text = "Seen today for review. Blood pressure stable. Knee pain worse after walking far."
    [hit] = NoteIndex({"a": text}, passage_words=6).search("knee", "keyword")
    assert hit.snippet == "Knee pain worse after walking far."
    assert (hit.start, hit.end) == (46, 80)
    assert hit.highlights == ((46, 50),)
    assert hit.snippet_html == "<mark>Knee</mark> pain worse after walking far."


def test_a_long_sentence_is_cut_into_word_windows() -> None:
    text = "one two three four five six seven eight nine ten eleven twelve"
    [hit] = NoteIndex({"a": text}, passage_words=5).search("seven", "keyword")
    assert hit.snippet == "six seven eight nine ten"


def test_semantic_snippet_is_the_closest_passage_without_marks() -> None:
    text = "Blood pressure 150/95 today. Wheezing with asthma exacerbation overnight."
    [hit] = NoteIndex({"a": text}, passage_words=5).search("breathing problems", "semantic")
    assert hit.snippet == "Wheezing with asthma exacerbation overnight."
    assert hit.highlights == ()
    assert hit.snippet_html == hit.snippet


def test_highlight_escapes_html() -> None:
    assert highlight("a<b> & c", ((0, 1), (7, 8))) == "<mark>a</mark>&lt;b&gt; &amp; <mark>c</mark>"
    assert highlight("xx <i>", ((3, 6),), start=0) == "xx <mark>&lt;i&gt;</mark>"


def test_search_notes_and_empty_index() -> None:
    assert [h.note_id for h in search_notes(NOTES, "wheezing", "keyword")] == ["n4"]
    assert NoteIndex({}).search("anything") == []


def test_bad_requests_are_refused(index: NoteIndex) -> None:
    with pytest.raises(DataError, match="mode must be one of"):
        index.search("pain", "fuzzy")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="limit >= 1; got 'keyword', 0"):
        index.search("pain", "keyword", limit=0)
    with pytest.raises(DataError, match="The query is empty"):
        index.search("  ", "semantic")
    with pytest.raises(DataError, match="Need k1 >= 0, 0 <= b <= 1"):
        NoteIndex(NOTES, b=2.0)
