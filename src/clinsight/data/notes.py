"""Clinical-text datasets: NegEx/ConText annotations, MTSamples, NCBI disease and BC5CDR.

Every file is read from `<data dir>/nlp`; a missing file raises `DataNotFoundError`
and a malformed one `DataError` naming the path and the line.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from clinsight.config import get_settings
from clinsight.errors import DataError, DataNotFoundError

__all__ = [
    "ContextAnnotation",
    "MTSample",
    "Mention",
    "NERCorpus",
    "PubTatorDocument",
    "TaggedSentence",
    "Temporality",
    "load_context_annotations",
    "load_mtsamples",
    "load_ner_corpus",
    "nlp_data_path",
    "read_conll",
    "read_pubtator",
    "split_context_annotations",
    "split_mtsamples",
]


class Temporality(StrEnum):
    """When a condition happens relative to the note."""

    RECENT = "recent"
    HISTORICAL = "historical"
    HYPOTHETICAL = "hypothetical"


class NERCorpus(StrEnum):
    """The named-entity corpora shipped as CoNLL files under `nlp/`."""

    NCBI_DISEASE = "ncbi_disease"
    BC5CDR = "bc5cdr"


_TEMPORALITY = {
    "recent": Temporality.RECENT,
    "historical": Temporality.HISTORICAL,
    "hypothetical": Temporality.HYPOTHETICAL,
    "not particular": Temporality.HYPOTHETICAL,
}
_CONLL_SPLITS = ("train", "devel", "test")


@dataclass(frozen=True)
class ContextAnnotation:
    """One NegEx/ConText row: a condition in a sentence and its gold assertion."""

    line: int
    condition: str
    sentence: str
    negated: bool
    temporality: Temporality
    experiencer: Literal["patient", "other"]


@dataclass(frozen=True)
class MTSample:
    """One deduplicated MTSamples transcription with the specialties it was filed under."""

    text: str
    specialty: str
    specialties: tuple[str, ...]
    description: str
    sample_name: str
    note_ids: tuple[str, ...] = ()
    """The ``note_id`` of every row holding this text."""


@dataclass(frozen=True)
class TaggedSentence:
    """A tokenised sentence with one BIO tag per token."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Mention:
    """An entity mention in a PubTator document; offsets index `PubTatorDocument.text`."""

    start: int
    end: int
    text: str
    label: str
    identifier: str


@dataclass(frozen=True)
class PubTatorDocument:
    """A PubMed abstract with its annotated mentions."""

    pmid: str
    title: str
    abstract: str
    mentions: tuple[Mention, ...]

    @property
    def text(self) -> str:
        """Title and abstract joined by one space, the frame of the mention offsets."""
        return f"{self.title} {self.abstract}"


def nlp_data_path(*parts: str) -> Path:
    """Path of a file under `<data dir>/nlp`, which must exist.

    Raises:
        DataNotFoundError: the file is not there.
    """
    path = get_settings().resolved_data_dir.joinpath("nlp", *parts)
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} does not exist; put the clinical-text data under "
            f"{get_settings().resolved_data_dir / 'nlp'} or set CLINSIGHT_DATA_DIR."
        )
    return path


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist.")
    return path


def load_context_annotations(path: Path | None = None) -> list[ContextAnnotation]:
    """Read the NegEx/ConText annotated sentences (default: `nlp/negex/dev.tsv`).

    Raises:
        DataNotFoundError: the file is missing.
        DataError: a row has the wrong number of fields or an unknown label.
    """
    path = _existing(path) if path is not None else nlp_data_path("negex", "dev.tsv")
    rows: list[ContextAnnotation] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header is None or len(header) != 6:
            raise DataError(f"{path}:1: expected a 6-column header, got {header!r}.")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if len(row) != 6:
                raise DataError(f"{where}: expected 6 tab-separated fields, got {len(row)}.")
            _, condition, sentence, negation, temporality, experiencer = (f.strip() for f in row)
            if negation.lower() not in ("negated", "affirmed"):
                raise DataError(f"{where}: negation {negation!r} is not Negated or Affirmed.")
            if temporality.lower() not in _TEMPORALITY:
                raise DataError(f"{where}: unknown temporality {temporality!r}.")
            if not condition or not sentence:
                raise DataError(f"{where}: empty condition or sentence.")
            rows.append(
                ContextAnnotation(
                    line=reader.line_num,
                    condition=condition,
                    sentence=sentence,
                    negated=negation.lower() == "negated",
                    temporality=_TEMPORALITY[temporality.lower()],
                    experiencer="patient" if experiencer.lower() == "patient" else "other",
                )
            )
    return rows


def split_context_annotations(
    rows: Sequence[ContextAnnotation], held_out_fraction: float = 0.3
) -> tuple[list[ContextAnnotation], list[ContextAnnotation]]:
    """Split annotations into a rule-tuning part and a held-out part, by sentence text.

    A row is held out when the SHA-256 of its (stripped) sentence falls in the lowest
    `held_out_fraction` of the hash range, so the split is the same on every run and
    machine, every row of one sentence lands on the same side, and adding rows to the
    file moves none of the others.

    Raises:
        ValueError: `held_out_fraction` is not strictly between 0 and 1.
    """
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}.")
    cut = held_out_fraction * 2**64
    tuning: list[ContextAnnotation] = []
    held_out: list[ContextAnnotation] = []
    for row in rows:
        digest = hashlib.sha256(row.sentence.strip().encode("utf-8")).digest()
        (held_out if int.from_bytes(digest[:8], "big") < cut else tuning).append(row)
    return tuning, held_out


def load_mtsamples(path: Path | None = None) -> list[MTSample]:
    """Read MTSamples, one record per distinct transcription (first specialty kept as label).

    Raises:
        DataNotFoundError: the file is missing.
        DataError: a required column is absent.
    """
    path = _existing(path) if path is not None else nlp_data_path("mtsamples.csv")
    by_text: dict[str, list[dict[str, str]]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"transcription", "medical_specialty"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}:1: missing column(s) {sorted(missing)}.")
        for row in reader:
            text = (row["transcription"] or "").strip()
            if text:
                by_text.setdefault(text, []).append(row)
    samples = []
    for text, group in by_text.items():
        specialties = tuple(dict.fromkeys(r["medical_specialty"].strip() for r in group))
        first = group[0]
        samples.append(
            MTSample(
                text=text,
                specialty=specialties[0],
                specialties=specialties,
                description=(first.get("description") or "").strip(),
                sample_name=(first.get("sample_name") or "").strip(),
                note_ids=tuple(i for r in group if (i := (r.get("note_id") or "").strip())),
            )
        )
    return samples


def split_mtsamples(
    samples: Sequence[MTSample], test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[MTSample], list[MTSample]]:
    """Split by distinct text (seeded) so no transcription is in both train and test.

    Raises:
        ValueError: `test_fraction` is not strictly between 0 and 1.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    texts = sorted({s.text for s in samples})
    random.Random(seed).shuffle(texts)
    test_texts = set(texts[: round(len(texts) * test_fraction)])
    train = [s for s in samples if s.text not in test_texts]
    test = [s for s in samples if s.text in test_texts]
    return train, test


def read_conll(path: Path) -> list[TaggedSentence]:
    """Read a CoNLL file: token in the first column, BIO tag in the last; blank line between.

    Raises:
        DataNotFoundError: the file is missing.
        DataError: a line has a tag that is not O, B-X or I-X.
    """
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    with _existing(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").split("\t")
            if not line.strip():
                if tokens:
                    sentences.append(TaggedSentence(tuple(tokens), tuple(tags)))
                    tokens, tags = [], []
                continue
            tag = fields[-1].strip()
            if len(fields) < 2 or not (tag == "O" or tag[:2] in ("B-", "I-")):
                raise DataError(
                    f"{path}:{number}: expected 'TOKEN<TAB>...<TAB>BIO-TAG', got {line!r}."
                )
            tokens.append(fields[0])
            tags.append(tag)
    if tokens:
        sentences.append(TaggedSentence(tuple(tokens), tuple(tags)))
    return sentences


def load_ner_corpus(corpus: NERCorpus | str, split: str) -> list[TaggedSentence]:
    """One split (`train`, `devel`, `test`) of a CoNLL NER corpus under `nlp/`.

    Raises:
        DataError: unknown corpus or split; see also `read_conll`.
        DataNotFoundError: the file is missing.
    """
    try:
        name = NERCorpus(corpus)
    except ValueError:
        known = ", ".join(c.value for c in NERCorpus)
        raise DataError(f"Unknown NER corpus {corpus!r}; choose one of: {known}.") from None
    if split not in _CONLL_SPLITS:
        raise DataError(f"Unknown split {split!r}; choose one of: {', '.join(_CONLL_SPLITS)}.")
    return read_conll(nlp_data_path(name.value, "conll", f"{split}.tsv"))


def _pubtator_blocks(path: Path) -> Iterator[list[tuple[int, str]]]:
    block: list[tuple[int, str]] = []
    with _existing(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                block.append((number, line.rstrip("\n")))
            elif block:
                yield block
                block = []
    if block:
        yield block


def read_pubtator(path: Path) -> list[PubTatorDocument]:
    """Read a PubTator file (BC5CDR or NCBI disease): title, abstract and mention lines.

    Relation lines (`PMID<TAB>CID<TAB>...`) are skipped.

    Raises:
        DataNotFoundError: the file is missing.
        DataError: a block lacks its title/abstract or a mention line is malformed.
    """
    documents = []
    for block in _pubtator_blocks(path):
        (n_title, title_line), (_, abstract_line) = block[0], block[1]
        if "|t|" not in title_line or "|a|" not in abstract_line:
            raise DataError(f"{path}:{n_title}: expected 'PMID|t|title' then 'PMID|a|abstract'.")
        pmid, title = title_line.split("|t|", 1)
        abstract = abstract_line.split("|a|", 1)[1]
        mentions = []
        for number, line in block[2:]:
            fields = line.split("\t")
            if len(fields) >= 2 and fields[1] == "CID":
                continue
            if len(fields) < 5 or not (fields[1].isdigit() and fields[2].isdigit()):
                raise DataError(f"{path}:{number}: malformed mention line {line!r}.")
            identifier = fields[5] if len(fields) > 5 else ""
            mentions.append(
                Mention(int(fields[1]), int(fields[2]), fields[3], fields[4], identifier)
            )
        documents.append(PubTatorDocument(pmid, title, abstract, tuple(mentions)))
    return documents
