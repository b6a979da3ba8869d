"""Visit sequences of codes as arrays: the vocabulary, the padded arrays a `VisitNetwork`
reads, its training, and the bag-of-codes features of the logistic-regression baseline.

The vocabulary is fitted on the training patients only (codes seen in at least
``min_patients`` of them); every other code is index 1 ("unknown"), padding is 0. Each
visit carries two time features: log(1 + days since the previous visit) and log(1 + days
before the prediction), each divided by log(1 + 36525) (a century), so both lie in [0, 1].
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from clinsight.data.visit_tasks import VisitSample
from clinsight.errors import DataError
from clinsight.sequence.networks import VisitNetwork, VisitNetworkConfig
from clinsight.sequence.training import (
    ProgressCallback,
    SequenceTrainConfig,
    TrainingRun,
    seed_all,
    train_network,
)

__all__ = [
    "PADDING",
    "STATIC_VISIT_FEATURES",
    "TIME_FEATURES",
    "UNKNOWN",
    "CodeVocabulary",
    "VisitArrays",
    "bag_of_codes",
    "encode_visits",
    "fit_visit_network",
]

PADDING, UNKNOWN = 0, 1
TIME_FEATURES = ("days_since_previous", "days_before_prediction")
STATIC_VISIT_FEATURES = ("age_decades", "male", "female")
_CENTURY = math.log1p(36525.0)


@dataclass(frozen=True)
class CodeVocabulary:
    """Codes (``Code.key``) in index order; `index` of a code is its row (from 2)."""

    codes: tuple[str, ...]

    @classmethod
    def fit(
        cls, samples: Sequence[VisitSample], *, labels: bool = False, min_patients: int = 5
    ) -> CodeVocabulary:
        """The codes of the histories (or, with `labels`, of the label sets) that at least
        `min_patients` distinct patients of `samples` have, most frequent first.

        Raises:
            DataError: no code is frequent enough.
        """
        seen: dict[str, set[str]] = {}
        for sample in samples:
            codes = (
                sample.label_codes
                if labels
                else frozenset().union(*(v.codes for v in sample.visits))
            )
            for code in codes:
                seen.setdefault(code, set()).add(sample.patient_id)
        counts = Counter({code: len(p) for code, p in seen.items() if len(p) >= min_patients})
        if not counts:
            raise DataError(f"no code is recorded for {min_patients} or more training patients.")
        return cls(tuple(code for code, _ in sorted(counts.items(), key=lambda c: (-c[1], c[0]))))

    def __len__(self) -> int:
        return len(self.codes)

    def positions(self, offset: int = 2) -> dict[str, int]:
        """Code → row (histories: after padding and unknown; labels: `offset` 0)."""
        return {code: i + offset for i, code in enumerate(self.codes)}

    def to_dict(self) -> dict[str, Any]:
        return {"codes": list(self.codes)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CodeVocabulary:
        return cls(tuple(raw["codes"]))


@dataclass(frozen=True)
class VisitArrays:
    """Padded visit sequences of samples (right-padded; `lengths` visits each)."""

    codes: NDArray[np.int64]
    """(N, T, C) code rows of each visit, 0 padding."""
    times: NDArray[np.float32]
    """(N, T, 2) the `TIME_FEATURES` of each visit."""
    lengths: NDArray[np.int64]
    static: NDArray[np.float32]
    """(N, 3) `STATIC_VISIT_FEATURES` at the prediction."""
    labels: NDArray[np.int64]
    """(N,) 0/1 for onset; (N, K) 0/1 over the label vocabulary for next-visit tasks."""
    patient_ids: NDArray[np.str_]

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, index: NDArray[np.int64]) -> tuple[torch.Tensor, ...]:
        """The `VisitNetwork` inputs (codes, times, lengths, static) of the rows in `index`."""
        longest = int(self.lengths[index].max()) if len(index) else 1
        return (
            torch.from_numpy(np.ascontiguousarray(self.codes[index, :longest])),
            torch.from_numpy(np.ascontiguousarray(self.times[index, :longest])),
            torch.from_numpy(self.lengths[index]),
            torch.from_numpy(np.ascontiguousarray(self.static[index])),
        )


def encode_visits(
    samples: Sequence[VisitSample],
    history: CodeVocabulary,
    labels: CodeVocabulary | None = None,
) -> VisitArrays:
    """The arrays of `samples`: histories over `history`; labels over `labels` (multi-label)
    or each sample's 0/1 label (onset).

    Raises:
        DataError: there are no samples, or an onset sample lacks its label.
    """
    if not samples:
        raise DataError("no samples to encode: the task gave none for these patients.")
    rows = history.positions()
    steps = max(len(s.visits) for s in samples)
    width = max(len(v.codes) for s in samples for v in s.visits)
    codes = np.zeros((len(samples), steps, max(width, 1)), dtype=np.int64)
    times = np.zeros((len(samples), steps, len(TIME_FEATURES)), dtype=np.float32)
    lengths = np.array([len(s.visits) for s in samples], dtype=np.int64)
    static = np.zeros((len(samples), len(STATIC_VISIT_FEATURES)), dtype=np.float32)
    day = timedelta(days=1)
    for i, sample in enumerate(samples):
        previous = None
        for t, visit in enumerate(sample.visits):
            found = sorted(rows.get(code, UNKNOWN) for code in visit.codes)
            codes[i, t, : len(found)] = found
            gap = 0.0 if previous is None else (visit.time - previous) / day
            before = (sample.prediction_time - visit.time) / day
            times[i, t] = (math.log1p(gap) / _CENTURY, math.log1p(before) / _CENTURY)
            previous = visit.time
        static[i] = (0.0 if sample.age is None else sample.age / 10.0,
                     float(sample.sex == "male"), float(sample.sex == "female"))  # fmt: skip
    if labels is None:
        if any(s.label is None for s in samples):
            raise DataError("an onset sample has no label; encode labelled samples only.")
        y = np.array([s.label for s in samples], dtype=np.int64)
    else:
        targets = labels.positions(offset=0)
        y = np.zeros((len(samples), len(labels)), dtype=np.int64)
        for i, sample in enumerate(samples):
            for code in sample.label_codes:
                if code in targets:
                    y[i, targets[code]] = 1
    return VisitArrays(codes, times, lengths, static, y,
                       np.array([s.patient_id for s in samples]))  # fmt: skip


def bag_of_codes(arrays: VisitArrays, vocabulary: CodeVocabulary) -> NDArray[np.float64]:
    """(N, 2 + V + 3 + 1) log(1 + count) of each code row over the history (padding
    column always 0, unknown codes in column 1), the descriptors, log(1 + visits)."""
    n = len(arrays)
    counts = np.zeros((n, len(vocabulary) + 2), dtype=np.float64)
    rows = np.repeat(np.arange(n), arrays.codes.shape[1] * arrays.codes.shape[2])
    np.add.at(counts, (rows, arrays.codes.ravel()), 1.0)
    counts[:, PADDING] = 0.0
    return np.hstack([np.log1p(counts), arrays.static.astype(np.float64),
                      np.log1p(arrays.lengths.astype(np.float64))[:, None]])  # fmt: skip


def fit_visit_network(
    train: VisitArrays,
    val: VisitArrays,
    vocabulary: CodeVocabulary,
    config: SequenceTrainConfig,
    *,
    progress: ProgressCallback | None = None,
) -> tuple[VisitNetworkConfig, TrainingRun]:
    """A `VisitNetwork` (cell ``config.architecture``, gru or lstm; ``config.wide`` adds the
    linear term over log code counts) trained on `train`,
    the epoch with the best validation AUPRC (micro-averaged over next-visit labels) kept.

    Raises:
        ModelError: the cell is unknown, or a split is empty or one-class.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_all(config.seed)
    net_config = VisitNetworkConfig(
        cell=config.architecture, vocabulary=len(vocabulary) + 2,
        outputs=1 if train.labels.ndim == 1 else train.labels.shape[1],
        static=train.static.shape[1], time_features=len(TIME_FEATURES),
        hidden=config.hidden, dropout=config.dropout, wide=config.wide,
    )  # fmt: skip
    network = VisitNetwork(net_config)
    run = train_network(network, train, train.labels, val, val.labels, config, progress=progress)
    return net_config, run
