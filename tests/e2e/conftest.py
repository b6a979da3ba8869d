"""The e2e tests: the API service fixtures and the real HTTPS server on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from clinsight.app import create_app
from clinsight.config import Settings
from clinsight.services.bootstrap import bootstrap
from tests.support.service import PASSWORD, settings, tiny_registry

__all__ = ["server", "settings", "tiny_registry"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """The bootstrapped service over HTTPS on a free loopback port."""
    from clinsight.security.records import create_user
    from clinsight.store.db import session_factory
    from clinsight.store.roles import Role

    result = bootstrap(settings)
    with session_factory(result.engine)() as session:
        create_user(session, settings, username="alice", password=PASSWORD,
                    role=Role.CLINICIAN, actor=None)  # fmt: skip
        session.commit()
    port = _free_port()
    config = uvicorn.Config(create_app(settings, engine=result.engine), host="127.0.0.1",
                            port=port, ssl_certfile=str(result.certificate),
                            ssl_keyfile=str(result.private_key), log_level="warning")  # fmt: skip
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started, "the server did not start within 20 s"
    yield f"https://localhost:{port}"
    instance.should_exit = True
    thread.join(10)
    result.engine.dispose()
