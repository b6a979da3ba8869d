"""Clinical notes: sentences, sections, entities, assertion, de-identification, coding.

Components are spaCy factories built on `spacy.blank("en")` (no downloaded models);
every rule set is JSON data under `clinsight/nlp/rules/`, read by `load_rules`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from clinsight.errors import DataError

__all__ = ["RULES_DIR", "NerBackend", "Scores", "load_rules"]

RULES_DIR = Path(__file__).with_name("rules")


class NerBackend(StrEnum):
    """How a trained NER model is built: spaCy CNN or fine-tuned MiniLM-L6."""

    SPACY = "spacy"
    MINILM = "minilm"


def _read_rules(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"Rule file {path} does not exist.") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"Rule file {path}:{exc.lineno}: invalid JSON ({exc.msg}).") from None


def load_rules(name: str, path: Path | None = None) -> Any:
    """The parsed JSON rule set `rules/<name>.json` (cached: treat it as read-only), or the
    file at `path` (read each time).

    Raises:
        DataError: the file is missing or is not valid JSON.
    """
    return _read_rules(path) if path is not None else _packaged_rules(name)


@cache
def _packaged_rules(name: str) -> Any:
    return _read_rules(RULES_DIR / f"{name}.json")


@dataclass(frozen=True)
class Scores:
    """Precision, recall and F1 of one label, from true/false positive and false negative counts."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        """tp / (tp + fp), 0 when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn), 0 when nothing was expected."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """Counts and rounded ratios, ready for a JSON report."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }
