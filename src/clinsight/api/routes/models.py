"""The model registry over HTTP: list, card, promote and roll back (admins change stages)."""

from __future__ import annotations

from fastapi import APIRouter

from clinsight.api.deps import Admin, AnyUser, DbSession, State
from clinsight.api.schemas import ModelOut, PromoteIn, RollbackIn
from clinsight.registry.store import ModelVersion, get_model, list_models, promote, rollback
from clinsight.store import audit

__all__ = ["model_out", "router"]

router = APIRouter(prefix="/models", tags=["models"])


def model_out(model: ModelVersion, *, card: bool = False) -> ModelOut:
    """The API form of a registered version, optionally with its Markdown card."""
    text = None
    if card and model.card_path.is_file():
        text = model.card_path.read_text(encoding="utf-8")
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
    audit.append(
        session,
        action="model.promote",
        resource_type="model",
        actor_id=user.user_id,
        resource_id=f"{name}:{version}",
        details={"stage": str(body.stage)},
    )
    session.commit()
    return model_out(model)


@router.post("/{name}/rollback", response_model=ModelOut)
def rollback_model(
    name: str, body: RollbackIn, user: Admin, state: State, session: DbSession
) -> ModelOut:
    """Put an earlier version back into production (default: the previous one)."""
    model = rollback(state.settings.resolved_registry_dir, name, body.version, note=body.note)
    audit.append(
        session,
        action="model.rollback",
        resource_type="model",
        actor_id=user.user_id,
        resource_id=f"{name}:{model.version}",
    )
    session.commit()
    return model_out(model)
