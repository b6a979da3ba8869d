"""Shared state of the running service and the typed dependencies routes declare.

Deny by default: a route gets a principal only through `require_roles(...)`, which
checks the role with `security.access.require_role` (denials are audited), and
`create_app` refuses to start if any API route lacks it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings
from clinsight.errors import AuthenticationError
from clinsight.inference.cache import ModelCache, model_cache
from clinsight.inference.predictors import ImagePredictor
from clinsight.security.access import require_role
from clinsight.security.tokens import TokenIssuer
from clinsight.services.explanation_lungs import LungModels
from clinsight.store.actors import Principal
from clinsight.store.crypto import KeyRing
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from clinsight.store.uploads import UploadRecorder

__all__ = [
    "ROLE_MARKER",
    "Admin",
    "AnyUser",
    "AppState",
    "Auditor",
    "Clinician",
    "CurrentUser",
    "DbSession",
    "ServiceMetrics",
    "State",
    "StoreCtx",
    "bearer_principal",
    "declared_roles",
    "get_db",
    "get_state",
    "require_roles",
]

ROLE_MARKER = "__clinsight_roles__"


@dataclass
class ServiceMetrics:
    """Prometheus metrics of one app (own registry, so several apps can live in one process)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.request_seconds = Histogram(
            "clinsight_request_seconds",
            "HTTP request latency by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.predictions = Counter(
            "clinsight_predictions_total",
            "Predictions stored, by model name and version.",
            ["model", "version"],
            registry=self.registry,
        )


@dataclass
class AppState:
    """What every request shares: settings, database, keys, token issuer, models, metrics."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    keyring: KeyRing
    issuer: TokenIssuer
    metrics: ServiceMetrics
    uploads: UploadRecorder

    @property
    def models(self) -> ModelCache:
        """The process's model cache of the configured registry (every kind)."""
        return model_cache(self.settings.resolved_registry_dir, threads=self.settings.threads or 1)

    def predictor(self, name: str | None = None, version: int | None = None) -> ImagePredictor:
        """The predictor of image model `name` (default: the configured one): `version`,
        else its production version, from the model cache (`inference.cache`).

        Raises:
            ModelNotFoundError: no such model, version or production version.
            IntegrityError: the version's files were altered.
            ModelError: the ONNX graph cannot be loaded.
        """
        return self.models.image(name or self.settings.default_model, version)

    @property
    def lungs(self) -> LungModels:
        """The production lung models a chest classifier's heat map is checked against."""
        return LungModels.of(self.settings, self.models.segmentation)


async def get_state(request: Request) -> AppState:
    """The app's shared state (async: cheap dependencies run on the event loop, not in a
    worker thread, so a request makes fewer thread hand-offs)."""
    state: AppState = request.app.state.clinsight
    return state


State = Annotated[AppState, Depends(get_state)]


async def get_db(state: State) -> AsyncIterator[Session]:
    """A database session for one request, closed (and rolled back if uncommitted) after it.

    Creating a session touches no connection, and routes end their transactions
    themselves, so closing it here on the event loop does not block.
    """
    with state.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(get_db)]
_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/v1/auth/token")


def bearer_principal(
    request: Request,
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The principal of the request's bearer access token.

    Raises:
        AuthenticationError: no token, or an expired, forged or revoked one.
    """
    if credentials is None:
        raise AuthenticationError(
            "this route needs an access token: send 'Authorization: Bearer <token>' "
            "from POST /api/v1/auth/token"
        )
    claims = state.issuer.decode_access_token(credentials.credentials)
    with state.read_sessions() as session:  # a snapshot read: no write lock on SQLite
        principal = state.issuer.authenticate_claims(session, claims)
    request.state.auth_session_id = claims.session_id
    return principal


CurrentUser = Annotated[Principal, Depends(bearer_principal)]


def require_roles(*allowed: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only `allowed` roles (denials audited and committed)."""

    async def dependency(request: Request, principal: CurrentUser, session: DbSession) -> Principal:
        if principal.role in allowed:
            return principal
        route = request.scope.get("route")
        action = f"{request.method} {getattr(route, 'path', request.url.path)}"
        await run_in_threadpool(require_role, session, principal, action, *allowed)
        return principal  # not reached: require_role raises for this principal

    setattr(dependency, ROLE_MARKER, allowed)
    return dependency


AnyUser = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.CLINICIAN, Role.AUDITOR))]
Clinician = Annotated[Principal, Depends(require_roles(Role.CLINICIAN))]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
Auditor = Annotated[Principal, Depends(require_roles(Role.AUDITOR))]


async def store_context(state: State, session: DbSession, principal: CurrentUser) -> StoreContext:
    """The unit of work of this request for the authenticated principal."""
    return StoreContext(session, state.keyring, state.settings.resolved_files_dir, principal)


StoreCtx = Annotated[StoreContext, Depends(store_context)]


def declared_roles(dependant: Any) -> list[tuple[Role, ...]]:
    """Role sets declared anywhere in a route's dependency tree."""
    found: list[tuple[Role, ...]] = []
    call = getattr(dependant, "call", None)
    if call is not None and hasattr(call, ROLE_MARKER):
        found.append(getattr(call, ROLE_MARKER))
    for sub in getattr(dependant, "dependencies", []):
        found.extend(declared_roles(sub))
    return found
