"""A bootstrapped service on a tmp SQLite store with a tiny production model, and its users.

The fixtures are exposed by the conftests of the api, web and e2e tests.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from fastapi.testclient import TestClient

from clinsight.app import create_app
from clinsight.config import Settings, get_settings
from clinsight.registry import image
from clinsight.registry.stages import Stage
from clinsight.security.records import create_user
from clinsight.services.bootstrap import bootstrap
from clinsight.services.training import ImageTrainingOutcome
from clinsight.store.db import session_factory
from clinsight.store.roles import Role
from tests.support.store import PASSWORD

if TYPE_CHECKING:
    import httpx2  # the responses of Starlette's TestClient (it uses httpx2 where installed)

__all__ = [
    "PASSWORD", "HeldStep", "Service", "one_torch_thread", "service", "settings", "tiny_registry",
]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_registry(trained: ImageTrainingOutcome, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's tiny BreastMNIST registry with the model in production."""
    assert trained.model is not None
    registry = tmp_path_factory.mktemp("api-model") / "registry"
    shutil.copytree(trained.model.path.parent.parent, registry)
    image.REGISTRY.promote(registry, "breastmnist", trained.model.version, Stage.PRODUCTION)
    return registry


@pytest.fixture
def settings(tmp_path: Path, tiny_registry: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Development settings in a fresh HOME, cheap Argon2, a copy of the tiny registry."""
    registry = tmp_path / "registry"
    shutil.copytree(tiny_registry, registry)
    for name, value in {
        "REGISTRY_DIR": str(registry),
        "DEFAULT_MODEL": "breastmnist",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "PASSWORD_HASH_PARALLELISM": "1",
        "ADMIN_PASSWORD": PASSWORD,
        "THREADS": "1",
        # The service tests post a chest radiograph to the tiny breast model: its gate warns
        # there (tests of refusal set this to "[]").
        "INTENDED_USE_WARN_ONLY": '["breastmnist"]',
    }.items():
        monkeypatch.setenv(f"CLINSIGHT_{name}", value)
    get_settings.cache_clear()
    return get_settings()


@dataclass(frozen=True)
class Service:
    """The app's client, its settings and the ids of its users."""

    client: TestClient
    settings: Settings
    users: dict[str, str]

    def login(self, username: str) -> dict[str, str]:
        """Bearer headers for a user (password PASSWORD)."""
        response = self.client.post(
            "/api/v1/auth/token", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    """The bootstrapped app with admin, two clinicians (alice, bob) and an auditor."""
    result = bootstrap(settings)
    users = {}
    with session_factory(result.engine)() as session:
        for name, role in [("alice", Role.CLINICIAN), ("bob", Role.CLINICIAN),
                           ("auditor", Role.AUDITOR)]:  # fmt: skip
            user = create_user(
                session, settings, username=name, password=PASSWORD, role=role, actor=None
            )
            users[name] = user.id
        session.commit()
    app = create_app(settings, engine=result.engine)
    with TestClient(app, base_url="https://testserver") as client:
        yield Service(client, settings, users)
    result.engine.dispose()


class HeldStep:
    """A slow step of a request (NLP, Grad-CAM) made to wait while a write is tried."""

    def __init__(self) -> None:
        self.reached, self.release = threading.Event(), threading.Event()

    def wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        """`real`, waiting for the release once reached (never longer than a minute)."""

        def held(*args: Any, **kwargs: Any) -> Any:
            self.reached.set()
            self.release.wait(timeout=60)
            return real(*args, **kwargs)

        return held

    def write_meanwhile(
        self, service: Service, send: Callable[[], httpx2.Response]
    ) -> tuple[bool, httpx2.Response]:
        """Send the request; while its step is held, log bob in (a write to the store).
        Whether that login was blocked, and the request's answer once released."""
        answers: dict[str, httpx2.Response] = {}

        def run(name: str, call: Callable[[], httpx2.Response]) -> threading.Thread:
            thread = threading.Thread(target=lambda: answers.__setitem__(name, call()),
                                      daemon=True)  # fmt: skip
            thread.start()
            return thread

        request = run("request", send)
        try:
            assert self.reached.wait(timeout=60), "the request never reached the held step"
            body = {"username": "bob", "password": PASSWORD}
            login = run("login", lambda: service.client.post("/api/v1/auth/token", json=body))
            login.join(timeout=10)  # a bound, not a wait: the login returns at once
            blocked = login.is_alive()
        finally:
            self.release.set()
        request.join(timeout=60)
        login.join(timeout=60)
        assert answers["login"].status_code == 200, answers["login"].text
        return blocked, answers["request"]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one thread for each test of a module that imports this, restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
