"""Studies, predictions and feedback: encrypted files, provenance, policy and audit."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date

import pytest
import sqlalchemy as sa

from clinsight.config import Settings
from clinsight.errors import (
    DataError,
    DecryptionError,
    DuplicateRecordError,
    PermissionDeniedError,
    RecordNotFoundError,
)
from clinsight.security.access import UPLOAD_POLICY
from clinsight.security.clinical import (
    add_study,
    list_feedback,
    list_predictions,
    list_studies,
    read_study,
    record_feedback,
    record_prediction,
)
from clinsight.security.records import assign_care_team, create_patient
from clinsight.store import audit, studies
from clinsight.store.repositories import StoreContext
from clinsight.store.studies import (
    FeedbackRecord,
    PredictionDraft,
    PredictionFeedback,
    PredictionRecord,
    record_uploads,
    stage_upload,
)
from clinsight.store.tables import Verdict, new_id
from tests.support.store import DRAFT, IMAGE, PROVENANCE, MakeContext, People, draft_labels


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


def test_a_first_verdict_saved_twice_at_once_is_a_duplicate_not_a_crash(
    people: People, context: MakeContext, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer in at a time: two verdicts never pass the check")
    ctx = context(people.alice)
    _, study_id = _study(ctx)
    prediction = record_prediction(ctx, study_id, DRAFT)
    ctx.session.commit()
    rival = context(people.alice)

    def rival_commits_first() -> str:  # called after the look-up of the current verdict
        monkeypatch.setattr(studies, "new_id", new_id)
        record_feedback(rival, prediction.id, Verdict.AGREE, labels=draft_labels)
        rival.session.commit()
        return new_id()

    monkeypatch.setattr(studies, "new_id", rival_commits_first)
    with pytest.raises(DuplicateRecordError, match="saved by you at the same moment; reload"):
        record_feedback(context(people.alice), prediction.id, Verdict.DISAGREE, labels=draft_labels)


def test_feedback_rules_and_encrypted_reason(people: People, context: MakeContext) -> None:
    ctx = context(people.alice)
    _, study_id = _study(ctx)
    prediction = record_prediction(ctx, study_id, DRAFT)
    override = record_feedback(
        ctx,
        prediction.id,
        Verdict.OVERRIDE,
        labels=draft_labels,
        reason=" consolidation is atelectasis ",
        override_label="normal",
    )
    ctx.session.commit()
    assert override == FeedbackRecord(
        override.id,
        prediction.id,
        people.alice.user_id,
        Verdict.OVERRIDE,
        "consolidation is atelectasis",
        "normal",
        override.created_at,
        None,
    )
    raw = ctx.session.execute(sa.text("SELECT id, reason_ct FROM feedback")).all()
    assert [row.id for row in raw] == [override.id]
    reason = raw[0].reason_ct
    assert reason is not None
    assert reason.startswith("v1:")
    assert "atelectasis" not in reason
    with pytest.raises(DataError, match="override needs the corrected label and a reason"):
        record_feedback(
            ctx, prediction.id, Verdict.OVERRIDE, labels=draft_labels, override_label="normal"
        )
    with pytest.raises(DataError, match="only an override carries a label"):
        record_feedback(ctx, prediction.id, Verdict.DISAGREE, labels=draft_labels, reason="r",
                        override_label="x")  # fmt: skip
    with pytest.raises(RecordNotFoundError, match="no prediction with id nope"):
        record_feedback(ctx, "nope", Verdict.AGREE, labels=draft_labels)


def test_an_override_label_must_be_one_of_the_models_labels(
    people: People, context: MakeContext
) -> None:
    ctx = context(people.alice)
    _, study_id = _study(ctx)
    prediction = record_prediction(ctx, study_id, DRAFT)
    ctx.session.commit()
    message = "'banana' is not a label of pneumonia-cnn v3; choose one of: 'pneumonia', 'normal'"
    with pytest.raises(DataError, match=f"^{message}$"):
        record_feedback(ctx, prediction.id, Verdict.OVERRIDE, labels=draft_labels,
                        reason="looks like fruit", override_label="banana")  # fmt: skip
    ctx.session.rollback()
    assert ctx.session.execute(sa.text("SELECT count(*) FROM feedback")).scalar() == 0
    created = ctx.session.execute(
        sa.text("SELECT count(*) FROM audit_log WHERE action LIKE 'feedback.%'")
    ).scalar()
    assert created == 0


def test_a_second_verdict_replaces_the_first_and_keeps_it_as_history(
    people: People, context: MakeContext
) -> None:
    alice, bob = context(people.alice), context(people.bob)
    patient_id, study_id = _study(alice)
    admin = context(people.admin)
    assign_care_team(admin, people.bob.user_id, patient_id)
    admin.session.commit()
    prediction = record_prediction(alice, study_id, DRAFT)
    alice.session.commit()
    first = record_feedback(alice, prediction.id, Verdict.AGREE, labels=draft_labels)
    alice.session.commit()
    second = record_feedback(alice, prediction.id, Verdict.OVERRIDE, labels=draft_labels,
                             reason="rib fracture", override_label="normal")  # fmt: skip
    alice.session.commit()
    theirs = record_feedback(bob, prediction.id, Verdict.DISAGREE, labels=draft_labels)
    bob.session.commit()
    versions = list_feedback(alice, patient_id, [prediction.id])
    alice.session.commit()
    assert versions == [
        replace(first, superseded_at=second.created_at),
        second,
        theirs,
    ]
    found = PredictionFeedback(tuple(versions))
    assert found.current == [second, theirs]
    assert found.current_of(people.alice.user_id) == second
    assert found.history_of(people.alice.user_id) == [versions[0]]
    assert found.history_of(people.bob.user_id) == []
    assert PredictionFeedback.by_prediction(versions) == {prediction.id: found}
    entries = alice.session.execute(
        sa.text(
            "SELECT action, resource_id, details FROM audit_log"
            " WHERE action LIKE 'feedback.%' ORDER BY seq"
        )
    ).all()
    assert [(e.action, e.resource_id) for e in entries] == [
        ("feedback.create", first.id),
        ("feedback.update", second.id),
        ("feedback.create", theirs.id),
        ("feedback.list", patient_id),
    ]
    details = [e.details if isinstance(e.details, dict) else json.loads(e.details) for e in entries]
    assert details == [
        {"verdict": "agree"},
        {"verdict": "override", "previous_id": first.id, "previous_verdict": "agree"},
        {"verdict": "disagree"},
        {"predictions": 1, "versions": 3},
    ]
    alice.session.rollback()
    with pytest.raises(PermissionDeniedError, match="may not open patient"):
        list_feedback(context(people.auditor), patient_id, [prediction.id])


def test_one_current_verdict_per_clinician_is_enforced_by_the_schema(
    people: People, context: MakeContext
) -> None:
    ctx = context(people.alice)
    _, study_id = _study(ctx)
    prediction = record_prediction(ctx, study_id, DRAFT)
    record_feedback(ctx, prediction.id, Verdict.AGREE, labels=draft_labels)
    ctx.session.commit()
    row = {"p": prediction.id, "u": people.alice.user_id, "at": "2026-01-01 00:00:00"}
    with pytest.raises(sa.exc.IntegrityError):
        ctx.session.execute(
            sa.text(
                "INSERT INTO feedback (id, prediction_id, user_id, verdict, created_at)"
                " VALUES ('x', :p, :u, 'disagree', :at)"
            ),
            row,
        )
    ctx.session.rollback()


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
        lambda: record_feedback(bob, prediction.id, Verdict.AGREE, labels=draft_labels),
        lambda: list_feedback(bob, patient_id, [prediction.id]),
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


def test_a_prediction_reads_its_finding_with_or_without_a_band(
    people: People, context: MakeContext
) -> None:
    ctx = context(people.alice)
    _, study_id = _study(ctx)
    band = {"low": 0.2, "high": 0.95}
    argmax = record_prediction(ctx, study_id, DRAFT)  # a row from before decision bands
    assert (argmax.decision, argmax.decision_thresholds) == (None, None)
    assert (argmax.predicted_label, argmax.label_probability) == ("pneumonia", 0.91)
    assert argmax.positive_probability == 0.87
    other = replace(DRAFT, decision="normal", decision_thresholds=band)
    assert record_prediction(ctx, study_id, other).label_probability == pytest.approx(0.09)
    unsure = record_prediction(ctx, study_id, replace(other, decision="indeterminate"))
    ctx.session.commit()
    assert (unsure.predicted_label, unsure.label_probability) == ("indeterminate", None)
    stored = list_predictions(ctx, study_id)
    assert sorted(p.predicted_label for p in stored) == ["indeterminate", "normal", "pneumonia"]
    assert {p.id: p.decision_thresholds for p in stored}[unsure.id] == band
