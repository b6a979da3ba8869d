"""Time-to-event data: the built-in cohorts and the outcome checks."""

from __future__ import annotations

import numpy as np
import pytest

from clinsight.data.survival import check_outcome, load_survival_dataset, survival_target
from clinsight.errors import DataError, DataNotFoundError


def test_gbsg2_is_typed_with_its_outcome_and_ranges() -> None:
    data = load_survival_dataset("gbsg2")
    assert data.X.shape == (686, 8)
    assert int(data.event.sum()) == 299
    assert data.censoring_rate == pytest.approx(387 / 686)
    assert data.spec.positive_label == "recurrence or death"
    age = next(f for f in data.spec.features if f.name == "age")
    assert age.plausible is not None
    assert (age.plausible.low, age.plausible.high) == (18, 100)
    assert data.y.dtype.names == ("event", "time")


def test_the_gene_cohort_names_its_groups() -> None:
    data = load_survival_dataset("breast_cancer_genes")
    assert len(data.groups["genes"]) == 76
    assert data.groups["clinical"] == ("age", "er", "grade", "size")
    assert data.subset(data.groups["clinical"]).X.shape == (198, 4)
    with pytest.raises(DataNotFoundError, match="No survival data set 'nope'"):
        load_survival_dataset("nope")


def test_bad_outcomes_are_refused_by_row() -> None:
    with pytest.raises(DataError, match="row 2: follow-up time -3 is negative"):
        check_outcome([5, -3], [1, 0])
    with pytest.raises(DataError, match="row 1: the follow-up time is missing"):
        check_outcome(np.array([np.nan, 3.0]), [1, 0])
    with pytest.raises(DataError, match="row 2: event flag 2 is not 0/1"):
        check_outcome([5, 3], [1, 2])
    with pytest.raises(DataError, match="no event is observed"):
        check_outcome([5, 3], [0, 0])
    target = survival_target([5, 3], [True, 0])
    assert target["event"].tolist() == [True, False]
    assert np.array_equal(target["time"], [5.0, 3.0])
