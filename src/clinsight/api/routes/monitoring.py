"""Monitoring of image model versions in use, and proposing their recalibration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from clinsight.api.deps import Admin, State, StoreCtx, require_roles
from clinsight.api.routes.models import model_out
from clinsight.api.schemas import ModelOut
from clinsight.services.models import StageActor
from clinsight.services.monitoring import model_monitoring, propose_recalibration
from clinsight.store.actors import Principal
from clinsight.store.roles import Role

__all__ = ["RecalibrationOut", "router"]

router = APIRouter(prefix="/monitoring", tags=["monitoring"])
Overseer = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.AUDITOR))]


class RecalibrationOut(BaseModel):
    """A proposed recalibration: the new candidate version (not serving) and its fit."""

    model: ModelOut = Field(description="The new version, stage candidate.")
    from_version: int
    labels: int = Field(description="Clinician-confirmed labels it was fitted on.")
    temperature_before: float
    temperature_after: float
    nll_before: float = Field(description="Negative log-likelihood on those labels, before.")
    nll_after: float


@router.get("/image/{name}/{version}", response_model=dict[str, Any])
def monitoring(name: str, version: int, user: Overseer, ctx: StoreCtx, state: State) -> Any:
    """By ISO week against the validation baseline: agreement of the clinicians' verdicts,
    override reasons, intended-use refusals, indeterminate share, predicted-positive rate,
    mean positive probability and input intensity, their PSI and the drift alert (PSI > 0.2).
    `baseline` is null for a version registered without one."""
    del user
    return model_monitoring(ctx, state.settings, name, version).to_dict()


@router.post(
    "/image/{name}/{version}/recalibration", response_model=RecalibrationOut, status_code=201
)
def recalibrate(
    name: str, version: int, user: Admin, ctx: StoreCtx, state: State
) -> RecalibrationOut:
    """Propose a recalibration fitted on the clinicians' confirmed labels: registered as a new
    candidate version (audited), never served until promoted. Refused (422) with too few
    confirmed labels."""
    found = propose_recalibration(ctx, state.settings, StageActor.of(user, via="api"), name,
                                  version)  # fmt: skip
    return RecalibrationOut(
        model=model_out(found.model), from_version=found.from_version, labels=found.labels,
        temperature_before=found.temperature_before, temperature_after=found.temperature_after,
        nll_before=found.nll_before, nll_after=found.nll_after,
    )  # fmt: skip
