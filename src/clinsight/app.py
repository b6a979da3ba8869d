"""The ASGI application: REST API under /api/v1, the web UI, health, readiness and metrics.

It sits above both `api` and `web` (and below the CLI): it assembles their routers, the
middleware and the shared state, so neither of them needs to import the other's routes.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clinsight import __version__
from clinsight.api.deps import AppState, ServiceMetrics, declared_roles
from clinsight.api.docs import ASSETS_PATH, assets, docs_router
from clinsight.api.problems import PROBLEM_RESPONSES, install_problem_handlers, problem_response
from clinsight.api.routes import (
    audit,
    auth,
    care_teams,
    models,
    monitoring,
    notes,
    patients,
    studies,
    users,
    workspace,
)
from clinsight.api.routes.cds_hooks import router as cds_hooks_router
from clinsight.api.routes.progression import router as progression_router
from clinsight.api.routes.recommendations import router as recommendations_router
from clinsight.api.routes.risk import router as risk_router
from clinsight.api.routes.segmentations import router as segmentations_router
from clinsight.api.routes.survival import router as survival_router
from clinsight.config import Settings
from clinsight.errors import ClinsightError, ConfigurationError
from clinsight.evaluation.drift import DRIFT_PSI
from clinsight.registry.mirror import attach_configured
from clinsight.security.access import UPLOAD_POLICY
from clinsight.security.tokens import TokenIssuer
from clinsight.services.monitoring import drift_gauges
from clinsight.store.crypto import load_or_create_keyring
from clinsight.store.db import create_db_engine, read_session_factory, session_factory
from clinsight.store.uploads import UploadRecorder
from clinsight.web.admin_pages import router as admin_web_router
from clinsight.web.notes import router as notes_web_router
from clinsight.web.pages import STATIC_DIR, error_page
from clinsight.web.pages import router as web_router
from clinsight.web.risk_pages import router as risk_web_router
from clinsight.web.segmentation_pages import router as segmentation_web_router
from clinsight.web.survival_pages import router as survival_web_router
from clinsight.web.treatment_pages import router as treatment_web_router
from clinsight.web.worklist_pages import router as worklist_web_router

__all__ = [
    "API_PREFIX", "DriftCollector", "ObserveMiddleware", "check_routes_declare_roles", "create_app",
]  # fmt: skip

API_PREFIX = "/api/v1"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
}


def check_routes_declare_roles(routers: Sequence[APIRouter], public: frozenset[str]) -> None:
    """Deny by default: every API route outside `public` must declare its roles.

    Raises:
        ConfigurationError: a route under /api/v1 has no `require_roles` dependency.
    """
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            path = API_PREFIX + route.path
            if path not in public and not declared_roles(route.dependant):
                raise ConfigurationError(f"route {path} declares no roles; add require_roles")


class ObserveMiddleware:
    """Pure ASGI middleware: request latency by route template and status into the metrics,
    and the security headers on every response (a `BaseHTTPMiddleware` costs far more)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request_seconds.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start
            )


class DriftCollector(Collector):
    """The drift gauges, computed from the store at each scrape: the newest weekly PSI per
    image model version and feature, and whether it exceeds the drift threshold."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def describe(self) -> Iterable[Metric]:
        """The gauges without samples (registering the collector reads no store)."""
        return self._families()

    def _families(self) -> list[GaugeMetricFamily]:
        psi = GaugeMetricFamily(
            "clinsight_model_drift_psi",
            "Population stability index of the newest ISO week against the validation "
            "baseline, by image model, version and feature.",
            labels=["model", "version", "feature"],
        )
        alert = GaugeMetricFamily(
            "clinsight_model_drift_alert",
            f"1 when a feature's PSI of the newest week exceeds {DRIFT_PSI}, by model version.",
            labels=["model", "version"],
        )
        return [psi, alert]

    def collect(self) -> Iterable[Metric]:
        """`clinsight_model_drift_psi` and `clinsight_model_drift_alert` (no samples while
        the store or the registry cannot be read)."""
        psi, alert = self._families()
        try:
            with self.state.read_sessions() as session:
                gauges = drift_gauges(session, self.state.settings.resolved_registry_dir)
        except (ClinsightError, SQLAlchemyError):
            return [psi, alert]
        drifting: dict[tuple[str, str], bool] = {}
        for gauge in gauges:
            key = (gauge.model, str(gauge.version))
            psi.add_metric([*key, gauge.feature], gauge.psi)
            drifting[key] = drifting.get(key, False) or gauge.psi > DRIFT_PSI
        for key, value in drifting.items():
            alert.add_metric(list(key), 1.0 if value else 0.0)
        return [psi, alert]


def _operations_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @router.get("/ready", response_model=None)
    def ready(request: Request) -> dict[str, str] | Response:
        """Readiness: the database answers and the production model is loaded."""
        state: AppState = request.app.state.clinsight
        try:
            with state.read_sessions() as session:  # no write lock: never queues behind one
                session.execute(text("SELECT 1"))
            predictor = state.predictor()
        except (ClinsightError, Exception) as exc:  # readiness reports any failure as 503
            return problem_response(503, "Not ready", f"{type(exc).__name__}: {exc}")
        model = predictor.model
        return {"status": "ready", "model": f"{model.name}:{model.version}"}

    @router.get("/metrics", response_class=Response)
    def metrics(request: Request) -> Response:
        """Prometheus metrics: request latency histograms, predictions by model version."""
        state: AppState = request.app.state.clinsight
        registry = state.metrics.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several workers: pool their files
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(DriftCollector(state))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(settings: Settings, *, engine: Engine | None = None) -> FastAPI:
    """The service for `settings` (the store must be migrated: see `services.bootstrap`).

    Raises:
        ConfigurationError: the key file is missing or unsafe, or a route declares no roles.
    """
    engine = engine or create_db_engine(settings=settings)
    keyring = load_or_create_keyring(settings)
    attach_configured(settings)
    sessions, read_sessions = session_factory(engine), read_session_factory(engine)
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        read_sessions=read_sessions,
        keyring=keyring,
        issuer=TokenIssuer.from_settings(settings, keyring),
        metrics=ServiceMetrics(),
        uploads=UploadRecorder(
            sessions, read_sessions, keyring, settings.resolved_files_dir, policy=UPLOAD_POLICY
        ),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Few request threads: each holds the GIL for its Python work, and a thread that
        # holds the store's write lock must get the GIL back quickly to release it.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = settings.request_threads
        yield
        await anyio.to_thread.run_sync(state.uploads.close)

    app = FastAPI(
        lifespan=lifespan,
        title="Clinsight",
        version=__version__,
        description="Clinical decision support: image diagnosis with provenance and audit.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served offline by `api.docs`
        redoc_url=None,
    )
    app.state.clinsight = state
    state.metrics.registry.register(DriftCollector(state))
    install_problem_handlers(app, html_page=error_page)
    app.add_middleware(ObserveMiddleware, metrics=state.metrics)
    api_routers = [
        m.router for m in (auth, users, patients, studies, notes, models, monitoring, audit)
    ]
    api_routers += [risk_router, survival_router, progression_router, recommendations_router]
    api_routers += [segmentations_router, care_teams.router, workspace.router]
    check_routes_declare_roles(api_routers, auth.PUBLIC_PATHS)
    for router in api_routers:
        app.include_router(router, prefix=API_PREFIX, responses=PROBLEM_RESPONSES)
    app.include_router(_operations_router(), responses=PROBLEM_RESPONSES)
    app.include_router(docs_router())
    app.include_router(cds_hooks_router, responses=PROBLEM_RESPONSES)
    app.include_router(web_router)
    app.include_router(admin_web_router)
    app.include_router(notes_web_router)
    app.include_router(risk_web_router)
    app.mount(ASSETS_PATH, assets(), name="api-docs-assets")
    app.include_router(survival_web_router)
    app.include_router(treatment_web_router)
    app.include_router(worklist_web_router)
    app.include_router(segmentation_web_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
