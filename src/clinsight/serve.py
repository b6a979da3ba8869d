"""Run the service over HTTPS with Uvicorn (the app factory is `clinsight.app.create_app`).

With more than one worker (by default one per core) Uvicorn starts that many
processes, each its own interpreter, so Python work runs on every core; they share the
store, the key ring and the registry, get the settings through the environment, and pool
their Prometheus metrics in a folder under HOME.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from clinsight.app import create_app
from clinsight.config import Settings
from clinsight.errors import ConfigurationError
from clinsight.services.bootstrap import check_production

__all__ = ["app_from_environment", "export_settings", "run_server", "service_url"]

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKER_STARTUP_S = 120


def service_url(settings: Settings) -> str:
    """The URL to open in a browser."""
    host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::") else settings.host  # noqa: S104
    return f"https://{host}:{settings.port}/"


def run_server(settings: Settings, certificate: Path, private_key: Path) -> None:
    """Serve HTTPS until interrupted; plain HTTP is never offered.

    Raises:
        ConfigurationError: unsafe production settings or a missing certificate.
    """
    check_production(settings)
    if not certificate.is_file() or not private_key.is_file():
        raise ConfigurationError(f"TLS files {certificate} and {private_key} must both exist")
    common = {
        "host": settings.host,
        "port": settings.port,
        "ssl_certfile": str(certificate),
        "ssl_keyfile": str(private_key),
        "log_level": "info",
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if settings.resolved_workers == 1:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
        return
    metrics_dir = settings.home / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, mode=0o700)
    os.environ[METRICS_ENV] = str(metrics_dir)
    export_settings(settings)
    uvicorn.run(
        "clinsight.serve:app_from_environment",
        factory=True,
        workers=settings.resolved_workers,
        # A worker imports PyTorch, ONNX Runtime and the app before it answers the
        # supervisor's health check; on a busy 2-core machine that takes longer than
        # Uvicorn's default 5 s, after which it kills and restarts the worker for ever.
        timeout_worker_healthcheck=WORKER_STARTUP_S,
        **common,  # type: ignore[arg-type]
    )


def export_settings(settings: Settings) -> None:
    """Put `settings` into this process's environment, for worker processes to read."""
    for name, value in settings.model_dump().items():
        key = f"CLINSIGHT_{name.upper()}"
        if value is None:
            os.environ.pop(key, None)
        elif isinstance(value, SecretStr):
            os.environ[key] = value.get_secret_value()
        elif isinstance(value, dict | list):
            os.environ[key] = json.dumps(value)
        else:
            os.environ[key] = str(value)


def app_from_environment() -> FastAPI:
    """The app of one worker process, from the settings its parent exported."""
    return create_app(Settings())
