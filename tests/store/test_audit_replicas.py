"""The audit chain when several replicas append at once: separate processes, each with
its own engine and connection pool on the one database, as `clinsight serve` replicas are.

Appends already serialise on the chain's head row (SELECT ... FOR UPDATE on PostgreSQL
under its default READ COMMITTED isolation: a waiting transaction reads the head its
predecessor committed; BEGIN IMMEDIATE on SQLite), so no extra lock is needed; this proves
it across processes.
"""

from __future__ import annotations

import multiprocessing

import sqlalchemy as sa
from sqlalchemy.orm import Session

from clinsight.store import audit
from clinsight.store.db import create_db_engine, session_factory

REPLICAS, PER_REPLICA = 3, 20


def _replica(url: str, replica: int, start: multiprocessing.synchronize.Event) -> None:
    engine = create_db_engine(url)
    sessions = session_factory(engine)
    start.wait(30)
    for index in range(PER_REPLICA):
        with sessions() as session:
            audit.append(session, action="prediction.create", resource_type="prediction",
                         resource_id=f"r{replica}-{index}")  # fmt: skip
            session.commit()
    engine.dispose()


def test_replica_processes_append_one_valid_chain(engine: sa.Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()  # the children open their own connections
    context = multiprocessing.get_context("fork")
    start = context.Event()
    replicas = [
        context.Process(target=_replica, args=(url, replica, start)) for replica in range(REPLICAS)
    ]
    for process in replicas:
        process.start()
    start.set()
    for process in replicas:
        process.join(60)
        assert process.exitcode == 0
    with Session(engine) as session:
        assert audit.verify(session) == audit.AuditVerification(True, REPLICAS * PER_REPLICA)
        ids = session.execute(sa.text("SELECT resource_id FROM audit_log")).scalars().all()
    assert sorted(ids) == sorted(f"r{r}-{i}" for r in range(REPLICAS) for i in range(PER_REPLICA))
