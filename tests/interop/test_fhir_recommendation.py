from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clinsight.interop.fhir_recommendation import RXNORM_SYSTEM, medication_proposals
from clinsight.recommend.matrix import build_treatment_data, context_at
from clinsight.recommend.models import make_recommender
from clinsight.recommend.safety import shipped_interactions
from clinsight.recommend.suggest import suggest
from tests.support.recommend import ARTHRITIS, IBUPROFEN, START, records, treated


def test_proposals_are_drafts_with_reasons() -> None:
    data = build_treatment_data(records(), min_patients=2)
    patient = treated("n", [(ARTHRITIS, IBUPROFEN, 10)])
    context = context_at(patient, START + timedelta(days=10))
    found = suggest(make_recommender("most_popular"), data, context, shipped_interactions())
    first, second = medication_proposals(
        found, subject="Patient/7", conditions={"Osteoarthritis": "Condition/3"},
        model="tiny", version=1, authored=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    assert (first["status"], first["intent"]) == ("draft", "proposal")
    assert first["medicationCodeableConcept"]["coding"][0] == {
        "system": RXNORM_SYSTEM, "code": "5640", "display": "Ibuprofen"}  # fmt: skip
    assert first["reasonReference"] == [{"reference": "Condition/3", "display": "Osteoarthritis"}]
    assert first["note"][0]["text"] == "8 of 11 patients with Osteoarthritis received Ibuprofen"
    assert second["medicationCodeableConcept"]["text"] == "Naproxen"
