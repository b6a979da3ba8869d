"""Use cases: monitor an image model version in use, and propose its recalibration.

Monitoring compares each ISO week of the version's predictions with the validation
baseline saved at training (`evaluation.drift`): agreement of the clinicians' verdicts,
override reasons, intended-use refusals, indeterminate share, predicted-positive rate,
mean positive probability and mean input intensity, and the PSI of the last two (drift
when > 0.2, on weeks with at least `MIN_PSI_PREDICTIONS`). A recalibration refits the
temperature on the labels clinicians confirmed (agree) or corrected (override) and
registers the result as a new *candidate* version: proposed, audited, never served until
an admin promotes it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
from scipy.special import expit, logit
from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError, ModelError, PermissionDeniedError, RecordNotFoundError
from clinsight.evaluation.calibration import fit_temperature
from clinsight.evaluation.drift import (
    DRIFT_PSI,
    FEATURES,
    Baseline,
    population_stability_index,
)
from clinsight.evaluation.thresholds import INDETERMINATE
from clinsight.inference.predictors import load_torch_model
from clinsight.registry.image import ModelVersion, get_model, list_models, read_baseline
from clinsight.registry.image import register_model as register_image_model
from clinsight.security.access import require_role
from clinsight.security.records import find_user
from clinsight.services.models import StageActor
from clinsight.store import audit
from clinsight.store.actors import Principal
from clinsight.store.crypto import load_or_create_keyring
from clinsight.store.db import create_db_engine, migrate, session_factory
from clinsight.store.monitoring import (
    MonitoredPrediction,
    MonitoredVerdict,
    model_predictions,
    model_verdicts,
)
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from clinsight.store.tables import Verdict

__all__ = [
    "MIN_PSI_PREDICTIONS",
    "DriftGauge",
    "MonitoringReport",
    "Recalibration",
    "WeekStats",
    "confirmed_labels",
    "drift_gauges",
    "iso_week",
    "model_monitoring",
    "monitoring_locally",
    "propose_recalibration",
    "propose_recalibration_locally",
]

MIN_PSI_PREDICTIONS = 20
WEEKS_SHOWN = 12


def iso_week(moment: datetime) -> str:
    """The ISO week of a moment in UTC, e.g. '2026-W49'."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


@dataclass(frozen=True)
class WeekStats:
    """One ISO week of a model version's use."""

    week: str
    predictions: int
    refused: int
    indeterminate_share: float | None
    predicted_positive_rate: float | None
    mean: dict[str, float | None]
    psi: dict[str, float | None]
    verdicts: dict[str, int]

    @property
    def agreement_rate(self) -> float | None:
        """Agree among all current verdicts (agree, disagree, override)."""
        return _share(self.verdicts.get("agree", 0), sum(self.verdicts.values()))

    @property
    def drift(self) -> bool:
        """Whether an input or output PSI exceeds the drift threshold this week."""
        return any(value is not None and value > DRIFT_PSI for value in self.psi.values())


@dataclass(frozen=True)
class MonitoringReport:
    """A model version's monitoring: weeks newest first, verdicts, overrides, baseline."""

    model: ModelVersion
    baseline: Baseline | None
    weeks: list[WeekStats]
    verdicts: dict[str, int]
    override_reasons: list[tuple[str, int]]
    corrections: list[tuple[str, str, int]]
    confirmed_labels: int
    min_labels: int

    @property
    def agreement_rate(self) -> float | None:
        """Agree among every current verdict on the version's predictions."""
        return _share(self.verdicts.get("agree", 0), sum(self.verdicts.values()))

    @property
    def latest_psi(self) -> WeekStats | None:
        """The newest week with a PSI (enough predictions and a baseline)."""
        return next((w for w in self.weeks if any(v is not None for v in w.psi.values())), None)

    @property
    def drift_alert(self) -> bool:
        """Whether the newest week with a PSI shows drift (PSI > 0.2)."""
        latest = self.latest_psi
        return latest is not None and latest.drift

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the API)."""
        latest = self.latest_psi
        return {
            "model": self.model.name, "version": self.model.version,
            "stage": str(self.model.stage),
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "agreement_rate": self.agreement_rate, "verdicts": self.verdicts,
            "override_reasons": [{"reason": r, "count": n} for r, n in self.override_reasons],
            "corrections": [{"predicted": p, "corrected": c, "count": n}
                            for p, c, n in self.corrections],
            "confirmed_labels": self.confirmed_labels,
            "recalibration_min_labels": self.min_labels,
            "drift_threshold": DRIFT_PSI, "drift_alert": self.drift_alert,
            "drift_week": latest.week if latest else None,
            "weeks": [{
                "week": w.week, "predictions": w.predictions, "refused": w.refused,
                "indeterminate_share": w.indeterminate_share,
                "predicted_positive_rate": w.predicted_positive_rate, "mean": w.mean,
                "psi": w.psi, "drift": w.drift, "verdicts": w.verdicts,
                "agreement_rate": w.agreement_rate,
            } for w in self.weeks],
        }  # fmt: skip


def _week_stats(
    week: str,
    found: Sequence[MonitoredPrediction],
    verdicts: Sequence[MonitoredVerdict],
    model: ModelVersion,
    baseline: Baseline | None,
) -> WeekStats:
    used = [p for p in found if not p.refused]
    values: dict[str, list[float]] = {
        "positive_probability": [p.positive_probability for p in used
                                 if p.positive_probability is not None],
        "mean_intensity": [p.mean_intensity for p in used if p.mean_intensity is not None],
    }  # fmt: skip
    psi: dict[str, float | None] = dict.fromkeys(FEATURES)
    if baseline is not None:
        for feature in FEATURES:
            histogram = baseline.histograms.get(feature)
            if histogram is not None and len(values[feature]) >= MIN_PSI_PREDICTIONS:
                psi[feature] = population_stability_index(histogram, values[feature])
    positive = model.labels[model.positive_index]
    banded = model.decision_thresholds is not None
    return WeekStats(
        week=week, predictions=len(found), refused=len(found) - len(used),
        indeterminate_share=(
            _share(sum(p.predicted_label == INDETERMINATE for p in used), len(used))
            if banded else None
        ),
        predicted_positive_rate=_share(sum(p.predicted_label == positive for p in used),
                                       len(used)),
        mean={feature: _mean(values[feature]) for feature in FEATURES}, psi=psi,
        verdicts=dict(Counter(str(v.verdict) for v in verdicts)),
    )  # fmt: skip


def confirmed_labels(verdicts: Sequence[MonitoredVerdict]) -> list[tuple[float, str]]:
    """(positive probability, label) of each prediction whose label the clinicians confirmed
    (agree with a finding) or corrected (override); predictions on which they disagree
    among themselves, indeterminate ones only agreed with, and plain disagreements count not."""
    by_prediction: dict[str, set[str]] = {}
    probability: dict[str, float] = {}
    for verdict in verdicts:
        if verdict.positive_probability is None:
            continue
        if verdict.verdict is Verdict.OVERRIDE and verdict.override_label:
            label = verdict.override_label
        elif verdict.verdict is Verdict.AGREE and verdict.predicted_label != INDETERMINATE:
            label = verdict.predicted_label
        else:
            continue
        by_prediction.setdefault(verdict.prediction_id, set()).add(label)
        probability[verdict.prediction_id] = verdict.positive_probability
    return [(probability[key], next(iter(labels)))
            for key, labels in by_prediction.items() if len(labels) == 1]  # fmt: skip


def model_monitoring(
    ctx: StoreContext, settings: Settings, name: str, version: int, *, now: datetime | None = None
) -> MonitoringReport:
    """The monitoring of an image model version over the last 12 ISO weeks (admins and
    auditors; the read of the verdicts' reasons is audited). Committed.

    Raises:
        PermissionDeniedError: the actor is not an admin or auditor (audited).
        ModelNotFoundError: no such model or version.
        RegistryError: its baseline.json is malformed.
    """
    require_role(ctx.session, ctx.actor, "monitoring.read", Role.ADMIN, Role.AUDITOR)
    model = get_model(settings.resolved_registry_dir, name, version, verify=False)
    baseline = read_baseline(model)
    since = (now or datetime.now(UTC)) - timedelta(weeks=WEEKS_SHOWN)
    found = model_predictions(ctx.session, name, version, since=since)
    verdicts = model_verdicts(ctx, name, version, since=since)
    ctx.session.commit()
    by_week: dict[str, list[MonitoredPrediction]] = {}
    for prediction in found:
        by_week.setdefault(iso_week(prediction.created_at), []).append(prediction)
    verdicts_by_week: dict[str, list[MonitoredVerdict]] = {}
    for verdict in verdicts:
        verdicts_by_week.setdefault(iso_week(verdict.prediction_created_at), []).append(verdict)
    weeks = [
        _week_stats(week, by_week[week], verdicts_by_week.get(week, []), model, baseline)
        for week in sorted(by_week, reverse=True)
    ]
    overrides = [v for v in verdicts if v.verdict is Verdict.OVERRIDE]
    reasons = Counter(" ".join((v.reason or "").split()) or "(no reason)" for v in overrides)
    corrections = Counter((v.predicted_label, v.override_label or "") for v in overrides)
    return MonitoringReport(
        model=model, baseline=baseline, weeks=weeks,
        verdicts=dict(Counter(str(v.verdict) for v in verdicts)),
        override_reasons=reasons.most_common(20),
        corrections=[(p, c, n) for (p, c), n in corrections.most_common()],
        confirmed_labels=len(confirmed_labels(verdicts)),
        min_labels=settings.recalibration_min_labels,
    )  # fmt: skip


@dataclass(frozen=True)
class DriftGauge:
    """The PSI of one feature of one model version in its newest week with enough data."""

    model: str
    version: int
    feature: str
    psi: float


def drift_gauges(
    session: Session, registry_dir: Path, *, now: datetime | None = None
) -> list[DriftGauge]:
    """The newest weekly PSI of every image model version with a baseline, from the last
    two ISO weeks of predictions (no PHI read; for `/metrics`)."""
    since = (now or datetime.now(UTC)) - timedelta(weeks=2)
    gauges = []
    for model in list_models(registry_dir):
        baseline = read_baseline(model)
        if baseline is None:
            continue
        found = model_predictions(session, model.name, model.version, since=since)
        by_week: dict[str, list[MonitoredPrediction]] = {}
        for prediction in found:
            by_week.setdefault(iso_week(prediction.created_at), []).append(prediction)
        for week in sorted(by_week, reverse=True):
            stats = _week_stats(week, by_week[week], [], model, baseline)
            known = {k: v for k, v in stats.psi.items() if v is not None}
            if known:
                gauges += [DriftGauge(model.name, model.version, k, v) for k, v in known.items()]
                break
    return gauges


@dataclass(frozen=True)
class Recalibration:
    """A proposed recalibration: the new candidate version and what it was fitted on."""

    model: ModelVersion
    from_version: int
    labels: int
    temperature_before: float
    temperature_after: float
    nll_before: float
    nll_after: float
    details: dict[str, Any] = field(default_factory=dict)


def _reconstructed_logits(model: ModelVersion, probs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Two-class logits that give back `probs` at the model's temperature."""
    margin = model.temperature * logit(np.clip(probs, 1e-7, 1 - 1e-7))
    logits = np.zeros((len(probs), 2))
    logits[:, model.positive_index] = margin
    return logits


def _nll(logits: np.ndarray[Any, Any], y: np.ndarray[Any, Any], temperature: float) -> float:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    log_probs = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(len(y)), y]))


def _probability_map(ratio: float) -> Any:
    """p -> the probability of the same logit margin at the new temperature (0, 1 fixed)."""

    def mapped(p: float) -> float:
        if p <= 0.0 or p >= 1.0:
            return p
        return float(expit(ratio * logit(p)))

    return mapped


def _check_enough(labels: Sequence[tuple[float, str]], model: ModelVersion, minimum: int) -> None:
    counts = Counter(label for _, label in labels)
    fewest = min(counts.get(label, 0) for label in model.labels)
    if len(labels) < minimum or fewest < math.ceil(minimum / 10):
        per_class = ", ".join(f"{counts.get(label, 0)} {label}" for label in model.labels)
        raise DataError(
            f"too few confirmed labels to recalibrate {model.name} v{model.version}: "
            f"{len(labels)} ({per_class}); it needs at least {minimum}, and at least "
            f"{math.ceil(minimum / 10)} of each class. Clinicians confirm a label by agreeing "
            "with a finding or overriding it with the correct one."
        )


def propose_recalibration(
    ctx: StoreContext, settings: Settings, actor: StageActor, name: str, version: int
) -> Recalibration:
    """Refit the temperature of a binary image model version on its clinician-confirmed
    labels and register the result as a new candidate version (same network, thresholds
    moved to the same logit cut-offs so every finding stays the same, baseline carried
    over); audited as ``model.recalibration_proposed``; never promoted. Committed.

    Raises:
        PermissionDeniedError: `ctx.actor` is not an admin (audited).
        ModelNotFoundError: no such model or version.
        DataError: too few confirmed labels, or a model that is not binary.
        ModelError, RegistryError: the new version cannot be registered.
    """
    require_role(ctx.session, ctx.actor, "model.recalibrate", Role.ADMIN)
    registry = settings.resolved_registry_dir
    model = get_model(registry, name, version)
    if model.task is not TaskType.BINARY:
        raise DataError(f"{name} v{version} is a {model.task} model; only binary models "
                        "are recalibrated from clinicians' labels")  # fmt: skip
    labels = confirmed_labels(model_verdicts(ctx, name, version))
    _check_enough(labels, model, settings.recalibration_min_labels)
    probs = np.array([p for p, _ in labels])
    positive = model.labels[model.positive_index]
    y = np.array([model.positive_index if label == positive else 1 - model.positive_index
                  for _, label in labels])  # fmt: skip
    logits = _reconstructed_logits(model, probs)
    after = fit_temperature(logits, y, TaskType.BINARY)
    mapped = _probability_map(model.temperature / after)
    thresholds = model.decision_thresholds
    if thresholds is not None:
        thresholds = replace(thresholds, low=mapped(thresholds.low), high=mapped(thresholds.high))
    baseline = read_baseline(model)
    if baseline is not None:
        histograms = dict(baseline.histograms)
        if "positive_probability" in histograms:
            histograms["positive_probability"] = histograms["positive_probability"].mapped(mapped)
        means = {k: v for k, v in baseline.mean.items() if k != "positive_probability"}
        baseline = replace(baseline, histograms=histograms, mean=means)
    result = Recalibration(
        model=model, from_version=version, labels=len(labels),
        temperature_before=model.temperature, temperature_after=after,
        nll_before=_nll(logits, y, model.temperature), nll_after=_nll(logits, y, after),
    )  # fmt: skip
    audit.append(
        ctx.session, action="model.recalibration_proposed", resource_type="model",
        actor_id=actor.actor_id, resource_id=f"{name}:{version}",
        details={"labels": len(labels), "temperature_before": round(model.temperature, 6),
                 "temperature_after": round(after, 6), **actor.details},
    )  # fmt: skip
    try:
        made = _register(registry, model, result, thresholds, baseline)
    except BaseException:
        ctx.session.rollback()
        raise
    ctx.session.commit()
    return replace(result, model=made)


def _register(
    registry: Path,
    model: ModelVersion,
    result: Recalibration,
    thresholds: Any,
    baseline: Baseline | None,
) -> ModelVersion:
    card = json.loads((model.path / "card.json").read_text(encoding="utf-8"))
    note = (
        f"Recalibrated from v{model.version}: temperature {result.temperature_before:.4g} -> "
        f"{result.temperature_after:.4g}, fitted on {result.labels} clinician-confirmed labels "
        f"(NLL {result.nll_before:.4f} -> {result.nll_after:.4f} on those labels). The test "
        f"metrics are those of v{model.version}: a temperature leaves the ranking (AUC) and "
        "every finding unchanged, not the calibration figures. Evaluate before promoting."
    )
    training = {
        **model.training,
        "recalibration": {
            "from_version": model.version, "labels": result.labels,
            "temperature_before": result.temperature_before,
            "temperature_after": result.temperature_after,
            "nll_before": result.nll_before, "nll_after": result.nll_after,
        },
    }  # fmt: skip
    try:
        network = load_torch_model(model)
    except Exception as exc:  # a network that cannot be rebuilt cannot be re-registered
        raise ModelError(f"the network of {model.name} v{model.version} cannot be rebuilt") from exc
    return register_image_model(
        registry, name=model.name, network=network, network_config=model.network_config,
        preprocess=model.preprocess, labels=model.labels, task=model.task,
        positive_index=model.positive_index, temperature=result.temperature_after,
        metrics=model.metrics, training=training, intended_use=card.get("intended_use"),
        limitations=[note], decision_thresholds=thresholds,
        intended_population=model.intended_population, baseline=baseline,
    )  # fmt: skip


def _local_run(settings: Settings, username: str, run: Any) -> Any:
    """Run `run(ctx, actor)` for the account `username` from the server itself (schema
    upgraded first), as the command line does."""
    engine = create_db_engine(settings=settings)
    try:
        migrate(engine)
        with session_factory(engine)() as session:
            user = find_user(session, username)
            if user is None:
                raise RecordNotFoundError(
                    f"no account is named {username!r}; give an admin's (or, to read, an "
                    "auditor's) username with --as"
                )
            if not user.active:
                raise PermissionDeniedError(f"account {user.username!r} is deactivated")
            principal = Principal(user.id, user.username, user.role)
            ctx = StoreContext(session, load_or_create_keyring(settings),
                               settings.resolved_files_dir, principal)  # fmt: skip
            return run(ctx, StageActor.of(principal, via="cli"))
    finally:
        engine.dispose()


def monitoring_locally(
    settings: Settings, name: str, version: int, *, as_user: str
) -> MonitoringReport:
    """`model_monitoring` from the server itself (`clinsight models monitor`) for the admin
    or auditor `as_user`.

    Raises:
        RecordNotFoundError, PermissionDeniedError: `as_user` is no active admin or auditor.
        As `model_monitoring`.
    """
    return cast(MonitoringReport, _local_run(
        settings, as_user,
        lambda ctx, _actor: model_monitoring(ctx, settings, name, version),
    ))  # fmt: skip


def propose_recalibration_locally(
    settings: Settings, name: str, version: int, *, as_user: str
) -> Recalibration:
    """`propose_recalibration` from the server itself (`clinsight models recalibrate`) for
    the admin `as_user`.

    Raises:
        RecordNotFoundError, PermissionDeniedError: `as_user` is no active admin.
        As `propose_recalibration`.
    """
    return cast(Recalibration, _local_run(
        settings, as_user,
        lambda ctx, actor: propose_recalibration(ctx, settings, actor, name, version),
    ))  # fmt: skip
