"""Feedback as a use case: one editable verdict per clinician, committed, read back with
its history on the prediction and on the patient timeline (both backends)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from clinsight.errors import ModelNotFoundError
from clinsight.security.clinical import add_study, record_prediction
from clinsight.security.records import create_patient
from clinsight.services.patients import patient_timeline
from clinsight.services.predictions import (
    give_feedback,
    prediction_detail,
    prediction_feedback,
)
from clinsight.store.studies import PredictionFeedback
from clinsight.store.tables import Verdict
from tests.support.store import DRAFT, IMAGE, MakeContext, People


def test_feedback_is_committed_replaced_and_read_back(
    people: People, context: MakeContext, tmp_path: Path
) -> None:
    ctx = context(people.alice)
    patient = create_patient(
        ctx, mrn="MRN-9", name="Ada Lovelace", birth_date=date(1815, 12, 10), sex="female"
    )
    study = add_study(ctx, patient.id, IMAGE, modality="CR")
    prediction = record_prediction(ctx, study.id, DRAFT)
    ctx.session.commit()
    registry = tmp_path / "registry"  # no model: only an override needs the labels
    agree = give_feedback(ctx, registry, prediction.id, Verdict.AGREE)
    disagree = give_feedback(ctx, registry, prediction.id, Verdict.DISAGREE, reason=" unsure ")
    assert not ctx.session.in_transaction()  # committed
    with pytest.raises(ModelNotFoundError, match="No model named 'pneumonia-cnn' in "):
        give_feedback(ctx, registry, prediction.id, Verdict.OVERRIDE, reason="r",
                      override_label="normal")  # fmt: skip
    ctx.session.rollback()
    found = prediction_feedback(ctx, prediction.id)
    assert found.versions[1] == disagree
    assert [(r.id, r.verdict, r.reason, r.current) for r in found.versions] == [
        (agree.id, Verdict.AGREE, None, False),
        (disagree.id, Verdict.DISAGREE, "unsure", True),
    ]
    assert found.versions[0].superseded_at == disagree.created_at
    detail = prediction_detail(ctx, prediction.id)
    assert (detail.prediction, detail.feedback) == (prediction, found)
    timeline = patient_timeline(ctx, patient.id)
    assert [entry.feedback for entry in timeline.studies] == [
        {prediction.id: PredictionFeedback(found.versions)}
    ]
    stored = ctx.session.execute(sa.text("SELECT count(*) FROM feedback")).scalar()
    ctx.session.rollback()
    assert stored == 2
