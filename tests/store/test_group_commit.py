"""Group commit: many threads' writes share transactions, each caller gets its own outcome."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings
from clinsight.errors import DataError, PermissionDeniedError
from clinsight.security.access import UPLOAD_POLICY
from clinsight.security.records import create_patient
from clinsight.store import audit
from clinsight.store.actors import Principal
from clinsight.store.crypto import KeyRing
from clinsight.store.group_commit import GroupCommit
from clinsight.store.studies import StagedUpload, record_uploads, stage_upload
from clinsight.store.uploads import UploadRecorder
from tests.support.store import DRAFT, IMAGE, MakeContext, People

THREADS = 12


def _note_writer(batches: list[int]) -> Callable[[Session, Sequence[str]], list[str | Exception]]:
    def write(session: Session, items: Sequence[str]) -> list[str | Exception]:
        batches.append(len(items))
        if "bad" in items:  # the whole batch fails, as on a constraint violation
            raise DataError("a bad item")
        out: list[str | Exception] = []
        for item in items:
            if item.startswith("refuse"):
                out.append(PermissionDeniedError(f"refused {item}"))
                continue
            audit.append(session, action="note", resource_type="test", resource_id=item)
            out.append(item.upper())
        return out

    return write


def _recorded(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        rows = session.execute(sa.text("SELECT resource_id FROM audit_log WHERE action='note'"))
        return sorted(rows.scalars())


def _submit_together(writer: GroupCommit[str, str], items: list[str]) -> dict[str, object]:
    outcomes: dict[str, object] = {}
    start = threading.Barrier(len(items))

    def run(item: str) -> None:
        start.wait()
        try:
            outcomes[item] = writer.submit(item).result(timeout=30)
        except Exception as exc:
            outcomes[item] = exc

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_items_share_transactions_and_each_gets_its_result(
    sessions: sessionmaker[Session],
) -> None:
    batches: list[int] = []
    writer: GroupCommit[str, str] = GroupCommit(sessions, _note_writer(batches))
    items = [f"item-{n}" for n in range(THREADS)] + ["refuse-1"]
    outcomes = _submit_together(writer, items)
    writer.close()
    assert {k: v for k, v in outcomes.items() if k != "refuse-1"} == {
        f"item-{n}": f"ITEM-{n}" for n in range(THREADS)
    }
    assert isinstance(outcomes["refuse-1"], PermissionDeniedError)
    assert sum(batches) == len(items)
    assert len(batches) < len(items), "no two writes shared a transaction"
    assert _recorded(sessions) == sorted(f"item-{n}" for n in range(THREADS))
    with sessions() as session:
        assert audit.verify(session).ok


def test_a_failing_batch_is_retried_item_by_item(sessions: sessionmaker[Session]) -> None:
    batches: list[int] = []
    writer: GroupCommit[str, str] = GroupCommit(sessions, _note_writer(batches))
    outcomes = _submit_together(writer, ["a", "bad", "b", "c"])
    writer.close()
    assert isinstance(outcomes.pop("bad"), DataError)
    assert outcomes == {"a": "A", "b": "B", "c": "C"}
    assert _recorded(sessions) == ["a", "b", "c"]


def test_a_fault_of_the_write_itself_fails_its_callers_and_the_writer_goes_on(
    sessions: sessionmaker[Session],
) -> None:
    def write(session: Session, items: Sequence[str]) -> list[str | Exception]:
        return [] if "short" in items else [item.upper() for item in items]

    writer: GroupCommit[str, str] = GroupCommit(sessions, write)
    with pytest.raises(ValueError, match="shorter"):  # one result missing
        writer.submit("short").result(timeout=30)
    assert writer.submit("next").result(timeout=30) == "NEXT"
    writer.close()


def test_close_writes_what_is_queued_then_refuses(sessions: sessionmaker[Session]) -> None:
    writer: GroupCommit[str, str] = GroupCommit(sessions, _note_writer([]))
    futures = [writer.submit(f"q{n}") for n in range(5)]
    writer.close()
    assert [f.result(timeout=0) for f in futures] == [f"Q{n}" for n in range(5)]
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit("late")


def _stage(uploads: UploadRecorder, actor: Principal, patient_id: str) -> StagedUpload:
    """A radiograph's file written for `actor`, ready to record."""
    return stage_upload(uploads.keyring, uploads.files_dir, actor, patient_id, IMAGE,
                        modality="CR", draft=DRAFT)  # fmt: skip


@pytest.fixture
def alices_patient(people: People, context: MakeContext) -> str:
    """A patient on alice's care team (she created the record)."""
    ctx = context(people.alice)
    patient = create_patient(ctx, mrn="M-1", name="Ada", birth_date=date(1815, 1, 1), sex="female")
    ctx.session.commit()
    return patient.id


@pytest.fixture
def uploads(
    sessions: sessionmaker[Session], keyring: KeyRing, settings: Settings
) -> Iterator[UploadRecorder]:
    """An upload recorder on the test database (reads and writes on one factory)."""
    recorder = UploadRecorder(
        sessions, sessions, keyring, settings.resolved_files_dir, policy=UPLOAD_POLICY
    )
    yield recorder
    recorder.close()


def test_upload_recorder_stores_studies_predictions_and_audit(
    people: People, sessions: sessionmaker[Session], uploads: UploadRecorder, alices_patient: str
) -> None:
    patient_id = alices_patient
    uploads.check_access(people.alice, patient_id)
    staged = [_stage(uploads, people.alice, patient_id) for _ in range(3)]
    stored = [future.result(timeout=30) for future in map(uploads.record, staged)]
    assert [study.id for study, _ in stored] == [s.study_id for s in staged]
    assert all(made.study_id == study.id for study, made in stored)
    with sessions() as session:
        counts = session.execute(
            sa.text("SELECT (SELECT count(*) FROM studies), (SELECT count(*) FROM predictions)")
        ).one()
        actions = session.execute(sa.text("SELECT action FROM audit_log ORDER BY seq")).scalars()
        assert tuple(counts) == (3, 3)
        assert list(actions).count("prediction.create") == 3
        assert audit.verify(session).ok
    assert all(s.file.is_file() for s in staged)


def test_upload_recorder_refuses_a_stranger_and_removes_the_file(
    people: People,
    sessions: sessionmaker[Session],
    uploads: UploadRecorder,
    alices_patient: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patient_id = alices_patient
    with pytest.raises(PermissionDeniedError, match="may not open patient"):
        uploads.check_access(people.bob, patient_id)
    # Staged while allowed, refused when recorded (e.g. taken off the care team meanwhile).
    staged = _stage(uploads, people.bob, patient_id)
    discard = StagedUpload.discard

    def slow_discard(self: StagedUpload) -> None:  # the refusal must wait for the removal
        time.sleep(0.2)
        discard(self)

    monkeypatch.setattr(StagedUpload, "discard", slow_discard)
    with pytest.raises(PermissionDeniedError):
        uploads.record(staged).result(timeout=30)
    assert not staged.file.exists()
    with sessions() as session:
        denied = session.execute(
            sa.text("SELECT count(*) FROM audit_log WHERE outcome = 'denied'")
        ).scalar_one()
        studies = session.execute(sa.text("SELECT count(*) FROM studies")).scalar_one()
    assert (denied, studies) == (2, 0)


def test_record_uploads_checks_each_actor_in_one_transaction(
    people: People, sessions: sessionmaker[Session], uploads: UploadRecorder, alices_patient: str
) -> None:
    patient_id = alices_patient
    mine = _stage(uploads, people.alice, patient_id)
    theirs = _stage(uploads, people.bob, patient_id)
    with sessions() as session:
        results = record_uploads(session, [theirs, mine, theirs], policy=UPLOAD_POLICY)
        session.commit()
    assert isinstance(results[0], PermissionDeniedError)
    assert isinstance(results[2], PermissionDeniedError)
    assert not isinstance(results[1], PermissionDeniedError)
    assert results[1][0].id == mine.study_id


def test_a_caller_who_gives_up_neither_stops_the_commit_nor_the_writer(
    people: People,
    sessions: sessionmaker[Session],
    uploads: UploadRecorder,
    alices_patient: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As when a client disconnects while its request awaits the commit.
    uploads.check_access(people.alice, alices_patient)
    first, second = (_stage(uploads, people.alice, alices_patient) for _ in range(2))

    async def give_up() -> None:
        waiting = asyncio.ensure_future(asyncio.wrap_future(uploads.record(first)))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(give_up())
    study, _ = uploads.record(second).result(timeout=30)  # the writer still writes
    assert study.id == second.study_id
    with sessions() as session:
        studies = session.execute(sa.text("SELECT id FROM studies")).scalars()
        assert set(studies) == {first.study_id, second.study_id}
    assert first.file.is_file()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
