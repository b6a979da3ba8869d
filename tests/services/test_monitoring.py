"""Monitoring a model version in use (weekly agreement, shares, PSI, drift) and proposing a
recalibration from clinician-confirmed labels as a new candidate version."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from clinsight.config import Settings, get_settings
from clinsight.errors import DataError, PermissionDeniedError
from clinsight.evaluation.drift import build_baseline
from clinsight.registry.image import Stage, get_model, read_baseline
from clinsight.security.clinical import add_study, record_prediction
from clinsight.security.records import create_patient
from clinsight.services.models import StageActor
from clinsight.services.monitoring import iso_week, model_monitoring, propose_recalibration
from clinsight.services.predictions import give_feedback
from clinsight.store.tables import Prediction, Verdict
from tests.support.image_models import band, register_tiny
from tests.support.store import DRAFT, IMAGE, MakeContext, People

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
BASELINE_P = np.linspace(0.02, 0.98, 50)


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """A tiny binary model (labels class0/class1, band [0.3, 0.7)) with a baseline."""
    folder = tmp_path / "registry"
    decisions = ["class1" if p >= 0.7 else "class0" if p < 0.3 else "indeterminate"
                 for p in BASELINE_P]  # fmt: skip
    baseline = build_baseline(BASELINE_P, np.full(50, 0.4) + np.linspace(0, 0.2, 50), decisions,
                              positive_label="class1", indeterminate="indeterminate")  # fmt: skip
    register_tiny(folder, decision_thresholds=band(0.3, 0.7), baseline=baseline)
    return folder


@pytest.fixture
def local(settings: Settings, registry: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CLINSIGHT_REGISTRY_DIR", str(registry))
    monkeypatch.setenv("CLINSIGHT_RECALIBRATION_MIN_LABELS", "10")
    get_settings.cache_clear()
    return get_settings()


def _predictions(
    ctx_factory: MakeContext, people: People, probs: list[float], intended_use: str = "ok"
) -> list[str]:
    ctx = ctx_factory(people.alice)
    patient = create_patient(ctx, mrn=f"MON-{intended_use}", name="Ada Lovelace",
                             birth_date=date(1815, 12, 10), sex="female")  # fmt: skip
    study = add_study(ctx, patient.id, IMAGE, modality="CR")
    ids = []
    for p in probs:
        decision = "class1" if p >= 0.7 else "class0" if p < 0.3 else "indeterminate"
        draft = replace(DRAFT, model_name="tiny", model_version="1", label=decision,
                        probability=p, calibrated_confidence=p, decision=decision,
                        input_mean_intensity=0.9, intended_use=intended_use)  # fmt: skip
        ids.append(record_prediction(ctx, study.id, draft).id)
    ctx.session.commit()
    return ids


def test_monitoring_counts_verdicts_shares_and_drift_by_week(
    people: People, context: MakeContext, local: Settings
) -> None:
    probs = [0.1] * 10 + [0.5] * 5 + [0.9] * 10  # 25 in this week
    ids = _predictions(context, people, probs)
    alice = context(people.alice)
    registry = local.resolved_registry_dir
    for prediction in ids[:3]:
        give_feedback(alice, registry, prediction, Verdict.AGREE)
    give_feedback(alice, registry, ids[3], Verdict.DISAGREE)
    give_feedback(alice, registry, ids[20], Verdict.OVERRIDE, reason=" missed  consolidation ",
                  override_label="class0")  # fmt: skip
    refused = _predictions(context, people, [0.9], intended_use="refused")  # one more, no finding
    admin = context(people.admin)
    report = model_monitoring(admin, local, "tiny", 1)
    assert not admin.session.in_transaction()  # committed, with its audit entry
    assert report.verdicts == {"agree": 3, "disagree": 1, "override": 1}
    assert report.agreement_rate == pytest.approx(0.6)
    assert report.override_reasons == [("missed consolidation", 1)]
    assert report.corrections == [("class1", "class0", 1)]
    assert report.confirmed_labels == 4  # three agreed findings and one corrected label
    assert len(report.weeks) == 1
    week = report.weeks[0]
    assert (week.predictions, week.refused) == (26, 1)
    assert refused
    assert week.indeterminate_share == pytest.approx(0.2)
    assert week.predicted_positive_rate == pytest.approx(0.4)
    assert week.mean["mean_intensity"] == pytest.approx(0.9)
    # Every intensity lies above the baseline's (0.4-0.6): all fall in its top bin.
    assert report.baseline is not None
    expected = report.baseline.histograms["mean_intensity"].shares()
    actual = [1e-4] * (len(expected) - 1) + [1.0]
    psi = sum(
        (a - max(e, 1e-4)) * np.log(a / max(e, 1e-4)) for a, e in zip(actual, expected, strict=True)
    )
    found = week.psi["mean_intensity"]
    assert found == pytest.approx(psi)
    assert found is not None
    assert found > 0.2
    assert report.drift_alert
    audited = admin.session.execute(
        sa.text("SELECT count(*) FROM audit_log WHERE action = 'feedback.monitoring_read'")
    ).scalar()
    admin.session.rollback()
    assert audited == 1
    with pytest.raises(PermissionDeniedError, match=r"monitoring\.read needs the role admin"):
        model_monitoring(context(people.alice), local, "tiny", 1)


def test_weeks_without_enough_predictions_have_no_psi(
    people: People, context: MakeContext, local: Settings
) -> None:
    _predictions(context, people, [0.1, 0.9])
    admin = context(people.admin)
    admin.session.execute(sa.update(Prediction).where(Prediction.label == "class0")
                          .values(created_at=datetime.now(UTC) - timedelta(weeks=3)))  # fmt: skip
    admin.session.commit()
    report = model_monitoring(admin, local, "tiny", 1)
    assert [w.predictions for w in report.weeks] == [1, 1]  # newest week first
    assert report.weeks[1].week == iso_week(datetime.now(UTC) - timedelta(weeks=3))
    assert all(v is None for w in report.weeks for v in w.psi.values())
    assert not report.drift_alert
    assert report.latest_psi is None


def test_iso_week_is_utc() -> None:
    assert iso_week(datetime(2027, 1, 1, 12, tzinfo=UTC)) == "2026-W53"


def test_recalibration_needs_enough_confirmed_labels_then_proposes_a_candidate(
    people: People, context: MakeContext, local: Settings
) -> None:
    # Overconfident model: 0.9 is right 6 times in 10, 0.1 right 6 times in 10.
    probs = [0.9] * 10 + [0.1] * 10
    ids = _predictions(context, people, probs)
    alice = context(people.alice)
    registry = local.resolved_registry_dir
    admin = context(people.admin)
    actor = StageActor.of(people.admin, via="test")
    for prediction in ids[:4]:
        give_feedback(alice, registry, prediction, Verdict.AGREE)
    with pytest.raises(
        DataError,
        match=r"too few confirmed labels to recalibrate tiny v1: 4 "
        r"\(0 class0, 4 class1\); it needs at least 10, and at least 1 of each",
    ):
        propose_recalibration(admin, local, actor, "tiny", 1)
    admin.session.rollback()
    for index, prediction in enumerate(ids):
        right = index % 10 < 6
        if right:
            give_feedback(alice, registry, prediction, Verdict.AGREE)
        else:
            other = "class0" if index < 10 else "class1"
            give_feedback(alice, registry, prediction, Verdict.OVERRIDE, reason="wrong",
                          override_label=other)  # fmt: skip
    with pytest.raises(PermissionDeniedError, match=r"model\.recalibrate needs the role admin"):
        propose_recalibration(context(people.alice), local, actor, "tiny", 1)
    found = propose_recalibration(admin, local, actor, "tiny", 1)
    model = found.model
    assert (model.version, model.stage) == (2, Stage.CANDIDATE)
    assert get_model(registry, "tiny", 1).stage == Stage.CANDIDATE  # nothing else changed
    assert found.labels == 20
    assert found.temperature_after > found.temperature_before
    assert found.nll_after < found.nll_before
    # 0.9 is right 60 % of the time: the best p' = 0.6, so T' = T * logit(0.9) / logit(0.6).
    ratio = np.log(9) / np.log(1.5)
    assert found.temperature_after == pytest.approx(found.temperature_before * ratio, rel=1e-3)
    old, new = get_model(registry, "tiny", 1), model
    assert new.decision_thresholds is not None
    assert old.decision_thresholds is not None
    for p in (0.05, 0.29, 0.31, 0.5, 0.69, 0.71, 0.95):
        mapped = 1 / (1 + np.exp(-np.log(p / (1 - p)) / ratio))
        assert new.decision_thresholds.decide(mapped, "class1", "class0") == (
            old.decision_thresholds.decide(p, "class1", "class0")
        )
    baseline = read_baseline(new)
    assert baseline is not None
    assert "positive_probability" not in baseline.mean
    assert new.training["recalibration"]["labels"] == 20
    assert "Recalibrated from v1" in new.card_path.read_text()
    entry = admin.session.execute(sa.text(
        "SELECT actor_id, resource_id, details FROM audit_log "
        "WHERE action = 'model.recalibration_proposed'")).one()  # fmt: skip
    assert entry[:2] == (people.admin.user_id, "tiny:1")
