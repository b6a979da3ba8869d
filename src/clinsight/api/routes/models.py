"""The model registry over HTTP: list, card, promote and roll back (admins change stages),
for image models (``/models``) and NER models (``/models/ner``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from clinsight.api.deps import Admin, AnyUser, DbSession, State
from clinsight.api.schemas import F1Out, ModelOut, NerModelOut, PromoteIn, RollbackIn
from clinsight.registry.image import ModelVersion, get_model, list_models, promote, rollback
from clinsight.registry.ner import (
    NerModelVersion,
    get_ner_model,
    list_ner_models,
    promote_ner_model,
    rollback_ner_model,
)
from clinsight.registry.versions import RegisteredVersion
from clinsight.security.access import Principal
from clinsight.store import audit

__all__ = ["model_out", "ner_model_out", "ner_test_f1", "router"]

router = APIRouter(prefix="/models", tags=["models"])


def _card_markdown(model: RegisteredVersion, card: bool) -> str | None:
    if card and model.card_path.is_file():
        return model.card_path.read_text(encoding="utf-8")
    return None


def model_out(model: ModelVersion, *, card: bool = False) -> ModelOut:
    """The API form of a registered version, optionally with its Markdown card."""
    text = _card_markdown(model, card)
    return ModelOut(
        name=model.name,
        version=model.version,
        stage=str(model.stage),
        created=model.created,
        task=str(model.task),
        labels=list(model.labels),
        artifact_sha256=model.artifact_sha256,
        metrics=model.metrics,
        card_markdown=text,
    )


def ner_test_f1(model: NerModelVersion) -> dict[str, F1Out]:
    """The test-split F1 (with interval) of each label of an NER version, then ``ALL``."""
    test: dict[str, Any] = model.metrics.get("test", {})
    ordered = sorted(test.items(), key=lambda item: item[0] == "ALL")
    return {label: F1Out(**scores["f1"]) for label, scores in ordered if "f1" in scores}


def ner_model_out(model: NerModelVersion, *, card: bool = False) -> NerModelOut:
    """The API form of a registered NER version, optionally with its Markdown card."""
    return NerModelOut(
        name=model.name,
        version=model.version,
        stage=str(model.stage),
        created=model.created,
        backend=str(model.backend),
        corpus=model.corpus,
        labels=list(model.labels),
        artifact_sha256=model.artifact_sha256,
        test_f1=ner_test_f1(model),
        metrics=model.metrics,
        card_markdown=_card_markdown(model, card),
    )


def _audit_stage(
    session: Session, action: str, kind: str, user: Principal, resource: str, **details: str
) -> None:
    """Record a stage change of model version `resource` (``name:version``) and commit."""
    audit.append(
        session, action=action, resource_type=kind, actor_id=user.user_id,
        resource_id=resource, details=details or None,
    )  # fmt: skip
    session.commit()


@router.get("/ner", response_model=list[NerModelOut])
def ner_models(user: AnyUser, state: State) -> list[NerModelOut]:
    """Every registered NER model version, by name then version."""
    del user
    return [ner_model_out(m) for m in list_ner_models(state.settings.resolved_registry_dir)]


@router.get("/ner/{name}/{version}", response_model=NerModelOut)
def ner_card(name: str, version: int, user: AnyUser, state: State) -> NerModelOut:
    """One NER version with its model card."""
    del user
    model = get_ner_model(state.settings.resolved_registry_dir, name, version, verify=False)
    return ner_model_out(model, card=True)


@router.post("/ner/{name}/{version}/promote", response_model=NerModelOut)
def promote_ner_version(
    name: str, version: int, body: PromoteIn, user: Admin, state: State, session: DbSession
) -> NerModelOut:
    """Move an NER version to a stage; the note pipeline uses every production version."""
    registry = state.settings.resolved_registry_dir
    model = promote_ner_model(registry, name, version, body.stage, note=body.note)
    _audit_stage(session, "model.promote", "ner_model", user, f"{name}:{version}",
                 stage=str(body.stage))  # fmt: skip
    return ner_model_out(model)


@router.post("/ner/{name}/rollback", response_model=NerModelOut)
def rollback_ner(
    name: str, body: RollbackIn, user: Admin, state: State, session: DbSession
) -> NerModelOut:
    """Put an earlier NER version back into production (default: the previous one)."""
    registry = state.settings.resolved_registry_dir
    model = rollback_ner_model(registry, name, body.version, note=body.note)
    _audit_stage(session, "model.rollback", "ner_model", user, f"{name}:{model.version}")
    return ner_model_out(model)


@router.get("", response_model=list[ModelOut])
def models(user: AnyUser, state: State) -> list[ModelOut]:
    """Every registered version, by name then version."""
    del user
    registry = state.settings.resolved_registry_dir
    if not registry.is_dir():
        return []
    return [model_out(m) for m in list_models(registry)]


@router.get("/{name}/{version}", response_model=ModelOut)
def card(name: str, version: int, user: AnyUser, state: State) -> ModelOut:
    """One version with its model card."""
    del user
    model = get_model(state.settings.resolved_registry_dir, name, version, verify=False)
    return model_out(model, card=True)


@router.post("/{name}/{version}/promote", response_model=ModelOut)
def promote_version(
    name: str, version: int, body: PromoteIn, user: Admin, state: State, session: DbSession
) -> ModelOut:
    """Move a version to a stage; production archives the current production version."""
    model = promote(state.settings.resolved_registry_dir, name, version, body.stage, note=body.note)
    _audit_stage(session, "model.promote", "model", user, f"{name}:{version}",
                 stage=str(body.stage))  # fmt: skip
    return model_out(model)


@router.post("/{name}/rollback", response_model=ModelOut)
def rollback_model(
    name: str, body: RollbackIn, user: Admin, state: State, session: DbSession
) -> ModelOut:
    """Put an earlier version back into production (default: the previous one)."""
    model = rollback(state.settings.resolved_registry_dir, name, body.version, note=body.note)
    _audit_stage(session, "model.rollback", "model", user, f"{name}:{model.version}")
    return model_out(model)
