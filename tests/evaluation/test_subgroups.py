"""Subgroup metrics by sex and age band, with gaps and too-small groups."""

from __future__ import annotations

import numpy as np
import pytest

from clinsight.errors import DataError
from clinsight.evaluation.subgroups import (
    age_band_labels,
    age_bands,
    subgroup_metrics,
    subgroup_reports,
)


def test_age_bands() -> None:
    assert age_band_labels() == ["<40", "40-49", "50-59", "60-69", "≥70"]
    assert age_bands([39.0, 40.0, 59.5, 70.0, np.nan]) == [
        "<40", "40-49", "50-59", "≥70", "missing",
    ]  # fmt: skip
    with pytest.raises(DataError, match="strictly increasing"):
        age_bands([50.0], edges=(60.0, 40.0))


def test_exact_metrics_per_group_and_gaps() -> None:
    # group A: 4 positives, 4 negatives, ranks perfectly; group B: one mistake each way.
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0] * 2)
    risk = np.r_[[0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1],
                 [0.9, 0.8, 0.7, 0.3, 0.6, 0.3, 0.2, 0.1]]  # fmt: skip
    sex = np.array([0.0] * 8 + [1.0] * 8)
    report = subgroup_metrics(
        y, risk, sex, attribute="sex", labels={0.0: "female", 1.0: "male"},
        min_group_size=8, min_per_class=2,
    )  # fmt: skip
    female, male = report.groups
    assert (female.group, female.n, female.n_positive, female.prevalence) == ("female", 8, 4, 0.5)
    assert (female.auc, female.sensitivity, female.specificity) == (1.0, 1.0, 1.0)
    # male: pairs won 14.5 of 16 (0.3 positive vs 0.3 negative is a tie)
    assert (male.auc, male.sensitivity, male.specificity) == (14.5 / 16, 0.75, 0.75)
    assert report.gaps == {"auc": 1.5 / 16, "sensitivity": 0.25, "specificity": 0.25}


def test_small_groups_are_reported_not_scored() -> None:
    y = np.array([1, 0] * 15 + [1, 1, 0])
    risk = np.linspace(0.1, 0.9, 33)
    groups = np.array(["a"] * 30 + ["b"] * 2 + [None], dtype=object)
    report = subgroup_metrics(y, risk, groups, attribute="site")
    a, b, missing = report.groups
    assert a.scored
    assert not b.scored
    assert b.auc is None
    assert b.note == (
        "too small to score: n=2, 2 with and 0 without the outcome (needs n >= 20 and >= 5 of each)"
    )
    assert missing.group == "missing"
    assert report.gaps == {"auc": None, "sensitivity": None, "specificity": None}


def test_reports_by_sex_and_age() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    risk = rng.random(200)
    reports = subgroup_reports(y, risk, sex=rng.integers(0, 2, 200), age=rng.uniform(30, 80, 200))
    assert list(reports) == ["sex", "age_band"]
    assert [g.group for g in reports["age_band"].groups] == age_band_labels()
    assert sum(g.n for g in reports["sex"].groups) == 200
    assert reports["sex"].to_dict()["groups"][0]["group"] == "0"


def test_subgroups_reject_bad_input() -> None:
    with pytest.raises(DataError, match="equally long"):
        subgroup_metrics([0, 1], [0.1, 0.2], [1], attribute="sex")
    with pytest.raises(DataError, match="only 0 and 1"):
        subgroup_metrics([0, 2], [0.1, 0.2], [1, 1], attribute="sex")
