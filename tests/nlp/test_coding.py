"""ICD-10-CM coding from vocabulary ids and exact description matches."""

from __future__ import annotations

import pytest

from clinsight.errors import DataError
from clinsight.nlp.coding import ICDCode, code_concept, icd10_code


def test_codes_from_vocabulary_id_and_description() -> None:
    assert code_concept("HTN", "I10") == ICDCode("I10", "Essential (primary) hypertension")
    assert code_concept("Hypothyroidism") == ICDCode("E03.9", "Hypothyroidism, unspecified")
    assert code_concept("essential hypertension") == ICDCode(
        "I10", "Essential (primary) hypertension"
    )
    assert code_concept("pneumonia").code == "J18.9"  # type: ignore[union-attr]
    assert code_concept("something vague") is None
    assert code_concept("gout", "not-a-code") == ICDCode("M10.9", "Gout, unspecified")


def test_icd10_code_validation() -> None:
    assert icd10_code("E119") == ICDCode("E11.9", "Type 2 diabetes mellitus without complications")
    with pytest.raises(DataError, match=r"'Z99\.999' is not an ICD-10-CM code"):
        icd10_code("Z99.999")
