"""Store fixtures and helpers: a migrated database on SQLite (tmp file) and on the real
PostgreSQL, accounts of every role, and a sample prediction draft.

The PostgreSQL variant runs in a uniquely named schema of database `test` on
127.0.0.1:5432 (override with CLINSIGHT_TEST_POSTGRES_URL), dropped afterwards,
and is skipped with the reason when the server does not answer.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings, get_settings
from clinsight.security.records import create_user
from clinsight.store import db
from clinsight.store.actors import Principal
from clinsight.store.crypto import KeyRing, load_or_create_keyring
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from clinsight.store.studies import PredictionDraft

__all__ = [
    "DRAFT", "IMAGE", "PASSWORD", "POSTGRES_URL", "PROVENANCE", "MakeContext", "People",
    "context", "draft_labels", "empty_engine", "engine", "keyring", "people", "postgres_url",
    "sessions", "settings",
]  # fmt: skip

POSTGRES_URL = os.environ.get(
    "CLINSIGHT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PASSWORD = "correct horse battery"
MakeContext = Callable[[Principal], StoreContext]
IMAGE = b"\x89PNG fake chest radiograph of Ada Lovelace"
PROVENANCE = {
    "model_name": "pneumonia-cnn",
    "model_version": "3",
    "artifact_sha256": "a" * 64,
    "input_sha256": "b" * 64,
    "preprocessing": {"size": 224, "normalise": "imagenet"},
    "label": "pneumonia",
    "probability": 0.91,
    "calibrated_confidence": 0.87,
    "latency_ms": 12.5,
}
DRAFT = PredictionDraft(**PROVENANCE)  # type: ignore[arg-type]


def draft_labels(name: str, version: str) -> tuple[str, ...]:
    """The labels of the model that made `DRAFT` (a `LabelLookup` for feedback)."""
    assert (name, version) == ("pneumonia-cnn", "3"), (name, version)
    return ("pneumonia", "normal")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server URL, or a skip when it does not answer."""
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc.orig}")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine on an empty database of each backend."""
    if request.param == "sqlite":
        engine = db.create_db_engine(f"sqlite:///{tmp_path / 'store.db'}")
        yield engine
        engine.dispose()
        return
    admin_url = request.getfixturevalue("postgres_url")
    schema = f"clinsight_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = db.create_db_engine(f"{admin_url}?options=-csearch_path%3D{schema}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(empty_engine: sa.Engine) -> sa.Engine:
    """A database of each backend, migrated to head."""
    db.migrate(empty_engine)
    return empty_engine


@pytest.fixture
def sessions(engine: sa.Engine) -> sessionmaker[Session]:
    """The session factory of the migrated database."""
    return db.session_factory(engine)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Isolated settings with cheap Argon2 parameters so tests stay fast."""
    monkeypatch.setenv("CLINSIGHT_PASSWORD_HASH_TIME_COST", "1")
    monkeypatch.setenv("CLINSIGHT_PASSWORD_HASH_MEMORY_KIB", "1024")
    monkeypatch.setenv("CLINSIGHT_PASSWORD_HASH_PARALLELISM", "1")
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def keyring(settings: Settings) -> KeyRing:
    """The key ring of the isolated HOME, created on first use."""
    return load_or_create_keyring(settings)


@dataclass(frozen=True)
class People:
    """One user of each role, plus a second clinician."""

    admin: Principal
    alice: Principal
    bob: Principal
    auditor: Principal


@pytest.fixture
def people(sessions: sessionmaker[Session], settings: Settings) -> People:
    """Accounts of every role (password `PASSWORD`), created by the bootstrap path."""
    made = {}
    with sessions() as session:
        for name, role in [
            ("admin", Role.ADMIN),
            ("alice", Role.CLINICIAN),
            ("bob", Role.CLINICIAN),
            ("auditor", Role.AUDITOR),
        ]:
            user = create_user(
                session, settings, username=name, password=PASSWORD, role=role, actor=None
            )
            made[name] = Principal(user.id, user.username, user.role)
        session.commit()
    return People(**made)


@pytest.fixture
def context(
    sessions: sessionmaker[Session], keyring: KeyRing, settings: Settings
) -> Iterator[MakeContext]:
    """A factory of `StoreContext`s, each on a new session closed after the test."""
    opened: list[Session] = []

    def make(actor: Principal) -> StoreContext:
        session = sessions()
        opened.append(session)
        return StoreContext(session, keyring, settings.resolved_files_dir, actor)

    yield make
    for session in opened:
        session.close()
