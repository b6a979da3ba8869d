"""The model registry over HTTP, one set of routes for every kind (``image``, ``risk``,
``ner``, ``survival``): list, card, promote, archive and roll back. Admins change stages,
through the audited service (`services.models.change_stage`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from clinsight.api.deps import Admin, AnyUser, DbSession, State
from clinsight.api.schemas import ModelOut, RollbackIn, StageChangeIn, ner_test_f1
from clinsight.registry.image import ModelVersion
from clinsight.registry.kinds import StageAction, get_version, list_versions
from clinsight.registry.ner import NerModelVersion
from clinsight.registry.risk import RiskModelVersion
from clinsight.registry.survival import SurvivalModelVersion
from clinsight.registry.versions import ModelKind, RegisteredVersion
from clinsight.services.models import StageActor, change_stage

__all__ = ["model_out", "router"]

router = APIRouter(prefix="/models", tags=["models"])


def _kind_fields(model: RegisteredVersion) -> dict[str, Any]:
    if isinstance(model, ModelVersion):
        return {"task": str(model.task), "labels": list(model.labels)}
    if isinstance(model, RiskModelVersion):
        return {
            "task": model.task.name,
            "labels": [model.task.positive_label],
            "thresholds": model.thresholds,
        }
    if isinstance(model, SurvivalModelVersion):
        return {"task": model.task.name, "labels": [model.event_label]}
    if isinstance(model, NerModelVersion):
        return {
            "labels": list(model.labels),
            "backend": str(model.backend),
            "corpus": model.corpus,
            "test_f1": ner_test_f1(model),
        }
    return {"labels": []}


def model_out(model: RegisteredVersion, *, card: bool = False) -> ModelOut:
    """The API form of a registered version of any kind, optionally with its Markdown card."""
    text = None
    if card and model.card_path.is_file():
        text = model.card_path.read_text(encoding="utf-8")
    return ModelOut(
        kind=model.kind,
        name=model.name,
        version=model.version,
        stage=str(model.stage),
        created=model.created,
        artifact_sha256=model.artifact_sha256,
        metrics=model.metrics,
        card_markdown=text,
        **_kind_fields(model),
    )


@router.get("", response_model=list[ModelOut])
def every_model(user: AnyUser, state: State) -> list[ModelOut]:
    """Every registered version of every kind, by kind, name and version."""
    del user
    return [model_out(m) for m in list_versions(state.settings.resolved_registry_dir)]


@router.get("/{kind}", response_model=list[ModelOut])
def models_of_kind(kind: ModelKind, user: AnyUser, state: State) -> list[ModelOut]:
    """Every registered version of one kind, by name then version."""
    del user
    return [model_out(m) for m in list_versions(state.settings.resolved_registry_dir, kind)]


@router.get("/{kind}/{name}/{version}", response_model=ModelOut)
def card(kind: ModelKind, name: str, version: int, user: AnyUser, state: State) -> ModelOut:
    """One version with its model card."""
    del user
    registry = state.settings.resolved_registry_dir
    return model_out(get_version(registry, kind, name, version, verify=False), card=True)


def _change(
    state: State, session: DbSession, user: Admin, kind: ModelKind, name: str,
    action: StageAction, version: int | None, note: str,
) -> ModelOut:  # fmt: skip
    registry = state.settings.resolved_registry_dir
    changed = change_stage(
        session, registry, StageActor.of(user), kind, name, action, version, note=note
    )
    return model_out(changed)


@router.post("/{kind}/{name}/{version}/promote", response_model=ModelOut)
def promote_version(
    kind: ModelKind, name: str, version: int, body: StageChangeIn, user: Admin, state: State,
    session: DbSession,
) -> ModelOut:  # fmt: skip
    """Put a version into production; the version in production before is archived."""
    return _change(state, session, user, kind, name, StageAction.PROMOTE, version, body.note)


@router.post("/{kind}/{name}/{version}/archive", response_model=ModelOut)
def archive_version(
    kind: ModelKind, name: str, version: int, body: StageChangeIn, user: Admin, state: State,
    session: DbSession,
) -> ModelOut:  # fmt: skip
    """Archive a version (taken out of service if it was in production)."""
    return _change(state, session, user, kind, name, StageAction.ARCHIVE, version, body.note)


@router.post("/{kind}/{name}/rollback", response_model=ModelOut)
def rollback_model(
    kind: ModelKind, name: str, body: RollbackIn, user: Admin, state: State, session: DbSession
) -> ModelOut:
    """Put an earlier version back into production (default: the one in production before)."""
    action = StageAction.ROLLBACK
    return _change(state, session, user, kind, name, action, body.version, body.note)
