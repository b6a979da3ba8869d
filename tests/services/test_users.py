"""Account use cases own their transaction: the account and its audit entry are committed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from clinsight.config import get_settings
from clinsight.errors import DataError, DuplicateRecordError
from clinsight.services.users import create_local_account
from clinsight.store.db import create_db_engine, session_factory
from clinsight.store.roles import Role
from clinsight.store.tables import AuditRow, User


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINSIGHT_PASSWORD_HASH_MEMORY_KIB", "1024")
    get_settings.cache_clear()


def test_a_local_account_is_committed_with_its_audit_entry() -> None:
    settings = get_settings()
    made = create_local_account(
        settings, username="Carol", password="correct horse battery", role=Role.AUDITOR
    )
    assert (made.username, made.role, made.active) == ("carol", Role.AUDITOR, True)
    with session_factory(create_db_engine(settings=settings))() as session:
        assert session.execute(select(User.username, User.role)).all() == [("carol", "auditor")]
        entries = session.execute(
            select(AuditRow.action, AuditRow.actor_id, AuditRow.resource_id, AuditRow.details)
        ).all()
    assert entries == [("user.create", None, made.id, {"role": "auditor"})]


def test_a_refused_account_leaves_nothing_behind() -> None:
    settings = get_settings()
    create_local_account(settings, username="carol", password="correct horse battery",
                         role=Role.CLINICIAN)  # fmt: skip
    with pytest.raises(DuplicateRecordError, match=r"^username 'carol' is taken; choose another$"):
        create_local_account(settings, username="carol", password="correct horse battery",
                             role=Role.ADMIN)  # fmt: skip
    with pytest.raises(DataError, match=r"^password must be 12 to 256 characters long$"):
        create_local_account(settings, username="dave", password="short", role=Role.ADMIN)
    with session_factory(create_db_engine(settings=settings))() as session:
        assert session.execute(select(User.username)).scalars().all() == ["carol"]
        assert session.execute(select(AuditRow.seq)).scalars().all() == [1]
