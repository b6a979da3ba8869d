"""Search across a patient's notes: BM25 keywords, sentence-embedding similarity, or both.

Terms are lower-cased alphanumeric runs without English stop words, with a plural ``s``
stripped ("fractures" → "fracture"; not after "ss", "us", "is"). Keyword scores are
BM25 (Okapi, with Lucene's always-positive idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``).
Semantic scores are the best cosine between the query and a passage of the note
(consecutive sentences up to `passage_words` words), embedded by `SentenceEncoder`.
Hybrid ranks by reciprocal rank fusion, ``sum 1 / (rrf_k + rank)`` over the keyword
ranking (notes with a keyword match) and the semantic ranking. Every hit carries a
snippet, the passage with most query terms (else the closest passage), with the terms
wrapped in ``<mark>`` and their offsets in the note.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from clinsight.errors import DataError
from clinsight.nlp.embeddings import SentenceEncoder
from clinsight.nlp.sentences import split_sentences

__all__ = ["NoteIndex", "SearchHit", "SearchMode", "highlight", "search_notes", "terms"]

SearchMode = Literal["keyword", "semantic", "hybrid"]
_MODES = ("keyword", "semantic", "hybrid")
_WORD = re.compile(r"[A-Za-z0-9]+")


def _normalise(word: str) -> str:
    word = word.lower()
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[tuple[str, int, int]]:
    """The search terms of `text` with their character offsets: (term, start, end)."""
    found = []
    for match in _WORD.finditer(text):
        word = match.group()
        if word.lower() not in ENGLISH_STOP_WORDS:
            found.append((_normalise(word), match.start(), match.end()))
    return found


def highlight(text: str, spans: tuple[tuple[int, int], ...], start: int = 0) -> str:
    """`text` HTML-escaped with each (start, end) span, given in a frame shifted by `start`,
    wrapped in ``<mark>``; spans must be sorted and not overlap."""
    pieces, cursor = [], 0
    for begin, end in spans:
        begin, end = begin - start, end - start
        pieces += [html.escape(text[cursor:begin]), f"<mark>{html.escape(text[begin:end])}</mark>"]
        cursor = end
    pieces.append(html.escape(text[cursor:]))
    return "".join(pieces)


@dataclass(frozen=True)
class SearchHit:
    """A note matching a query: its rank (1 = best), score, snippet and highlighted terms.

    `start`/`end` bound the snippet in the note; `highlights` are the query terms found in
    the snippet, as note offsets; `snippet_html` is the escaped snippet with ``<mark>``s.
    """

    note_id: str
    rank: int
    score: float
    start: int
    end: int
    snippet: str
    snippet_html: str
    highlights: tuple[tuple[int, int], ...]


def _passages(text: str, max_words: int) -> list[tuple[int, int]]:
    """Consecutive sentences packed into spans of at most `max_words` words (a longer
    sentence is cut into word windows)."""
    pieces: list[tuple[int, int, int]] = []  # (start, end, words) per sentence or window
    for s_start, s_end in split_sentences(text) or [(0, len(text))]:
        words = list(_WORD.finditer(text, s_start, s_end))
        for i in range(0, max(len(words), 1), max_words):
            chunk = words[i : i + max_words]
            if chunk:
                start = s_start if i == 0 else chunk[0].start()
                end = s_end if i + max_words >= len(words) else chunk[-1].end()
                pieces.append((start, end, len(chunk)))
    spans: list[tuple[int, int]] = []
    count = 0
    for start, end, words_in in pieces:
        if spans and count + words_in <= max_words:
            spans[-1] = (spans[-1][0], end)
            count += words_in
        else:
            spans.append((start, end))
            count = words_in
    return spans or [(0, len(text))]


class NoteIndex:
    """An in-memory index over `notes` (id → text) for keyword, semantic and hybrid search.

    Passage embeddings are computed on the first semantic or hybrid query.

    Raises:
        DataError: `k1` < 0, `b` outside [0, 1], `passage_words` or `rrf_k` below 1.
    """

    def __init__(
        self,
        notes: Mapping[str, str],
        *,
        encoder: SentenceEncoder | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        passage_words: int = 60,
        rrf_k: int = 60,
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1 or passage_words < 1 or rrf_k < 1:
            raise DataError(
                f"Need k1 >= 0, 0 <= b <= 1, passage_words >= 1 and rrf_k >= 1; got k1={k1}, "
                f"b={b}, passage_words={passage_words}, rrf_k={rrf_k}."
            )
        self.ids = list(notes)
        self.texts = [notes[i] for i in self.ids]
        self.encoder = encoder if encoder is not None else SentenceEncoder(max_seq_length=128)
        self.k1, self.b, self.rrf_k = k1, b, rrf_k
        self._terms = [terms(text) for text in self.texts]
        self._passages = [_passages(text, passage_words) for text in self.texts]
        vocabulary: dict[str, int] = {}
        for doc in self._terms:
            for term, _, _ in doc:
                vocabulary.setdefault(term, len(vocabulary))
        self._vocabulary = vocabulary
        rows = [row for row, doc in enumerate(self._terms) for _ in doc]
        columns = [vocabulary[term] for doc in self._terms for term, _, _ in doc]
        self._tf = sparse.csc_matrix(
            (np.ones(len(rows)), (rows, columns)), shape=(len(self.texts), len(vocabulary))
        )
        self._tf.sum_duplicates()
        self._lengths = np.array([len(doc) for doc in self._terms], dtype=np.float64)
        df = np.diff(self._tf.indptr)
        n = len(self.texts)
        self._idf = np.log1p((n - df + 0.5) / (df + 0.5))
        self._passage_vectors: list[NDArray[np.float32]] | None = None

    def keyword_scores(self, query: str) -> NDArray[np.float64]:
        """BM25 score of every note for `query` (0 where no term matches)."""
        scores = np.zeros(len(self.texts))
        if not self.texts:
            return scores
        average = max(float(self._lengths.mean()), 1.0)
        norm = self.k1 * (1 - self.b + self.b * self._lengths / average)
        for term, _, _ in terms(query):
            column = self._vocabulary.get(term)
            if column is not None:
                tf = self._tf[:, [column]].toarray().ravel()
                scores += self._idf[column] * tf * (self.k1 + 1) / (tf + norm)
        return scores

    def _vectors(self) -> list[NDArray[np.float32]]:
        if self._passage_vectors is None:
            flat = [self.texts[d][s:e] for d, spans in enumerate(self._passages) for s, e in spans]
            vectors = self.encoder.transform(flat)
            bounds = np.cumsum([0] + [len(spans) for spans in self._passages])
            self._passage_vectors = [vectors[a:z] for a, z in pairwise(bounds)]
        return self._passage_vectors

    def _passage_similarities(self, query: str) -> list[NDArray[np.float32]]:
        if not query.strip():
            raise DataError("The query is empty; type what to look for.")
        vector = self.encoder.transform([query])[0]
        return [passages @ vector for passages in self._vectors()]

    def semantic_scores(self, query: str) -> NDArray[np.float64]:
        """Best passage cosine of every note for `query`.

        Raises:
            DataError: the query is empty.
            ModelError: the sentence-embedding model cannot be loaded.
        """
        return np.array([float(s.max()) for s in self._passage_similarities(query)])

    def search(self, query: str, mode: SearchMode = "hybrid", limit: int = 10) -> list[SearchHit]:
        """The best `limit` notes for `query`, best first (ties keep the notes' order); a note
        scoring 0 or less (no keyword match, or a cosine <= 0) is not a hit.

        Raises:
            DataError: unknown mode, `limit` below 1, or an empty query for semantic search.
            ModelError: the sentence-embedding model cannot be loaded.
        """
        if mode not in _MODES or limit < 1:
            raise DataError(f"mode must be one of {_MODES} and limit >= 1; got {mode!r}, {limit}.")
        if not self.texts:
            return []
        similarities = self._passage_similarities(query) if mode != "keyword" else None
        semantic = np.array([float(s.max()) for s in similarities or ()])
        if mode == "keyword":
            scores = self.keyword_scores(query)
        elif mode == "semantic":
            scores = semantic
        else:
            scores = self._fuse(self.keyword_scores(query), semantic)
        order = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > 0]
        query_terms = {term for term, _, _ in terms(query)}
        return [
            self._hit(doc, rank, float(scores[doc]), query_terms, similarities)
            for rank, doc in enumerate(order[:limit], start=1)
        ]

    def _fuse(
        self, keyword: NDArray[np.float64], semantic: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        fused = np.zeros(len(self.texts))
        matched = [int(i) for i in np.argsort(-keyword, kind="stable") if keyword[i] > 0]
        for ranking in (matched, [int(i) for i in np.argsort(-semantic, kind="stable")]):
            for rank, doc in enumerate(ranking, start=1):
                fused[doc] += 1.0 / (self.rrf_k + rank)
        return fused

    def _hit(
        self,
        doc: int,
        rank: int,
        score: float,
        query_terms: set[str],
        similarities: list[NDArray[np.float32]] | None,
    ) -> SearchHit:
        text, passages = self.texts[doc], self._passages[doc]
        found = [(t, s, e) for t, s, e in self._terms[doc] if t in query_terms]
        per_passage = [len({t for t, s, _ in found if a <= s < z}) for a, z in passages]
        if max(per_passage, default=0) > 0 or similarities is None:
            best = int(np.argmax(per_passage))
        else:
            best = int(np.argmax(similarities[doc]))
        start, end = passages[best]
        marks = tuple((s, e) for _, s, e in found if start <= s and e <= end)
        return SearchHit(
            note_id=self.ids[doc],
            rank=rank,
            score=score,
            start=start,
            end=end,
            snippet=text[start:end],
            snippet_html=highlight(text[start:end], marks, start),
            highlights=marks,
        )


def search_notes(
    notes: Mapping[str, str], query: str, mode: SearchMode = "hybrid", limit: int = 10
) -> list[SearchHit]:
    """Index `notes` (id → text) and search them once; see `NoteIndex.search`.

    Raises:
        DataError: unknown mode, `limit` below 1, or an empty query for semantic search.
        ModelError: the sentence-embedding model cannot be loaded.
    """
    return NoteIndex(notes).search(query, mode, limit)
