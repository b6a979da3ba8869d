"""Run the service over HTTPS with Uvicorn (the app factory is `api.app.create_app`)."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from clinsight.api.app import create_app
from clinsight.config import Settings
from clinsight.errors import ConfigurationError
from clinsight.services.bootstrap import check_production

__all__ = ["run_server", "service_url"]


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
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(certificate),
        ssl_keyfile=str(private_key),
        log_level="info",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
