"""Studies, predictions and feedback: encrypted files, provenance, policy and audit."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import date

import pytest
import sqlalchemy as sa

from clinsight.config import Settings
from clinsight.errors import DataError, DecryptionError, PermissionDeniedError, RecordNotFoundError
from clinsight.security.access import UPLOAD_POLICY
from clinsight.security.clinical import (
    add_study,
    list_predictions,
    list_studies,
    read_study,
    record_feedback,
    record_prediction,
)
from clinsight.security.records import create_patient
from clinsight.store import audit
from clinsight.store.repositories import StoreContext
from clinsight.store.studies import (
    FeedbackRecord,
    PredictionDraft,
    PredictionRecord,
    record_uploads,
    stage_upload,
)
from clinsight.store.tables import Verdict
from tests.support.store import DRAFT, IMAGE, PROVENANCE, MakeContext, People


def _study(ctx: StoreContext) -> tuple[str, str]:
    patient = create_patient(
        ctx, mrn="MRN-1", name="Ada Lovelace", birth_date=date(1815, 12, 10), sex="female"
    )
    study = add_study(ctx, patient.id, IMAGE, modality="CR")
    ctx.session.commit()
    return patient.id, study.id


def test_study_is_encrypted_on_disk_and_reads_back(
    people: People, context: MakeContext, settings: Settings
) -> None:
    ctx = context(people.alice)
    patient_id, study_id = _study(ctx)
    record, content = read_study(ctx, study_id)
    assert content == IMAGE
    assert (record.patient_id, record.modality, record.size_bytes) == (patient_id, "CR", len(IMAGE))
    assert record.sha256 == hashlib.sha256(IMAGE).hexdigest()
    files = list(settings.resolved_files_dir.rglob("*.enc"))
    assert [f.name for f in files] == [f"{study_id}.enc"]
    assert b"Lovelace" not in files[0].read_bytes()
    assert list_studies(ctx, patient_id) == [record]


def test_a_study_whose_rows_fail_leaves_no_file(
    people: People, context: MakeContext, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = context(people.alice)
    patient_id, _ = _study(ctx)
    before = set(settings.resolved_files_dir.rglob("*.enc"))

    def lost_connection(*args: object, **kwargs: object) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(audit, "append_many", lost_connection)
    with pytest.raises(sa.exc.OperationalError):
        add_study(ctx, patient_id, b"second image", modality="CR")
    assert set(settings.resolved_files_dir.rglob("*.enc")) == before


def test_swapped_study_file_is_refused(
    people: People, context: MakeContext, settings: Settings
) -> None:
    ctx = context(people.alice)
    patient_id, first = _study(ctx)
    second = add_study(ctx, patient_id, b"other", modality="DX").id
    ctx.session.commit()
    files = settings.resolved_files_dir
    (files / first[:2] / f"{first}.enc").write_bytes(
        (files / second[:2] / f"{second}.enc").read_bytes()
    )
    with pytest.raises(DecryptionError, match=f"file {first} fails authentication"):
        read_study(ctx, first)


def test_prediction_keeps_full_provenance(people: People, context: MakeContext) -> None:
    ctx = context(people.alice)
    _, study_id = _study(ctx)
    made = record_prediction(ctx, study_id, DRAFT)
    ctx.session.commit()
    assert made == PredictionRecord(
        id=made.id,
        study_id=study_id,
        user_id=people.alice.user_id,
        created_at=made.created_at,
        **PROVENANCE,  # type: ignore[arg-type]
    )
    assert list_predictions(ctx, study_id) == [made]
    actions = ctx.session.execute(
        sa.text("SELECT action, details FROM audit_log WHERE action = 'prediction.create'")
    ).all()
    assert len(actions) == 1
    assert "pneumonia-cnn" in str(actions[0][1])
    with pytest.raises(DataError, match=r"must lie in \[0, 1\], got 1.5"):
        record_prediction(ctx, study_id, replace(DRAFT, probability=1.5))


def test_feedback_rules_and_encrypted_reason(people: People, context: MakeContext) -> None:
    ctx = context(people.alice)
    _, study_id = _study(ctx)
    prediction = record_prediction(ctx, study_id, DRAFT)
    agree = record_feedback(ctx, prediction.id, Verdict.AGREE)
    override = record_feedback(
        ctx,
        prediction.id,
        Verdict.OVERRIDE,
        reason=" consolidation is atelectasis ",
        override_label="normal",
    )
    ctx.session.commit()
    assert (agree.verdict, agree.reason, agree.override_label) == (Verdict.AGREE, None, None)
    assert override == FeedbackRecord(
        override.id,
        prediction.id,
        people.alice.user_id,
        Verdict.OVERRIDE,
        "consolidation is atelectasis",
        "normal",
        override.created_at,
    )
    raw = ctx.session.execute(sa.text("SELECT id, reason_ct FROM feedback")).all()
    reasons: dict[str, str | None] = {row.id: row.reason_ct for row in raw}
    assert reasons[agree.id] is None
    reason = reasons[override.id]
    assert reason is not None
    assert reason.startswith("v1:")
    assert "atelectasis" not in reason
    with pytest.raises(DataError, match="override needs the corrected label and a reason"):
        record_feedback(ctx, prediction.id, Verdict.OVERRIDE, override_label="normal")
    with pytest.raises(DataError, match="only an override carries a label"):
        record_feedback(ctx, prediction.id, Verdict.DISAGREE, reason="r", override_label="x")
    with pytest.raises(RecordNotFoundError, match="no prediction with id nope"):
        record_feedback(ctx, "nope", Verdict.AGREE)


def test_other_clinicians_reach_no_study(people: People, context: MakeContext) -> None:
    alice, bob = context(people.alice), context(people.bob)
    patient_id, study_id = _study(alice)
    prediction = record_prediction(alice, study_id, DRAFT)
    alice.session.commit()
    calls: list[Callable[[], object]] = [
        lambda: add_study(bob, patient_id, b"x", modality="CR"),
        lambda: read_study(bob, study_id),
        lambda: list_studies(bob, patient_id),
        lambda: record_prediction(bob, study_id, DRAFT),
        lambda: list_predictions(bob, study_id),
        lambda: record_feedback(bob, prediction.id, Verdict.AGREE),
    ]
    for call in calls:
        with pytest.raises(PermissionDeniedError, match="may not open patient"):
            call()
    denied = bob.session.execute(
        sa.text("SELECT count(*) FROM audit_log WHERE outcome = 'denied'")
    ).scalar()
    assert denied == len(calls)
    with pytest.raises(RecordNotFoundError, match="no study with id nope"):
        read_study(bob, "nope")


def _record_one(ctx: StoreContext, patient_id: str, draft: PredictionDraft) -> object:
    """Stage an upload as `ctx.actor` and record it in `ctx`'s transaction (not committed)."""
    staged = stage_upload(ctx.keyring, ctx.files_dir, ctx.actor, patient_id, IMAGE,
                          modality="CR", draft=draft)  # fmt: skip
    [result] = record_uploads(ctx.session, [staged], policy=UPLOAD_POLICY)
    return result


def test_study_and_prediction_stored_together(people: People, context: MakeContext) -> None:
    ctx = context(people.alice)
    patient_id, _ = _study(ctx)
    warned = replace(DRAFT, warnings=("The image shows body part LEG, not CHEST.",))
    result = _record_one(ctx, patient_id, warned)
    ctx.session.commit()
    assert isinstance(result, tuple)
    study, made = result
    assert made.study_id == study.id
    assert made.warnings == warned.warnings
    assert list_predictions(ctx, study.id) == [made]
    assert read_study(ctx, study.id)[1] == IMAGE
    actions = ctx.session.execute(
        sa.text("SELECT action FROM audit_log WHERE resource_id IN (:s, :p) ORDER BY seq"),
        {"s": study.id, "p": made.id},
    ).scalars()
    assert list(actions) == ["study.create", "prediction.create", "prediction.list", "study.read"]


def test_study_and_prediction_refused_together(
    people: People, context: MakeContext, settings: Settings
) -> None:
    patient_id, _ = _study(context(people.alice))
    files = sorted(settings.resolved_files_dir.rglob("*.enc"))
    bob = context(people.bob)
    assert isinstance(_record_one(bob, patient_id, DRAFT), PermissionDeniedError)
    bob.session.commit()  # the denial's audit entry
    with pytest.raises(DataError, match="must lie in"):  # checked before any file is written
        _record_one(context(people.alice), patient_id,
                    replace(DRAFT, calibrated_confidence=-0.1))  # fmt: skip
    counts = bob.session.execute(
        sa.text("SELECT (SELECT count(*) FROM studies), (SELECT count(*) FROM predictions)")
    ).one()
    assert tuple(counts) == (1, 0)
    denied = bob.session.execute(
        sa.text("SELECT count(*) FROM audit_log WHERE outcome = 'denied'")
    ).scalar()
    assert denied == 1
    # bob's file is the caller's to discard (the upload recorder does); none for the bad draft
    assert len(sorted(settings.resolved_files_dir.rglob("*.enc"))) == len(files) + 1
