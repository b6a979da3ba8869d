"""Group commit: writes from many request threads, a batch per transaction.

Every transaction pays a turn of the write lock, a BEGIN and a COMMIT with its fsync.
Under load, many requests wait to write at the same moment; `GroupCommit` hands their
items to one writer thread, which records all that are waiting in one transaction (one
lock turn, one fsync) and then wakes each caller with its own result. A caller is
answered only after the commit that made its rows durable.

If a batch fails as a whole (a constraint, a lost connection), nothing of it was
committed; each item is then written alone, so one bad item fails only its own caller.

This is the one place where the store commits work of its own: the transaction belongs
to the writer thread, shared by requests that each hand over an item and wait, so no
request's service can own it. It is a store-internal transaction mechanism, not a way
around the rule that services commit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

__all__ = ["GroupCommit"]

Item = TypeVar("Item")
Result = TypeVar("Result")
BatchWrite = Callable[[Session, Sequence[Item]], Sequence[Result | Exception]]
log = logging.getLogger(__name__)


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: Future[Result] = field(default_factory=Future)


class GroupCommit(Generic[Item, Result]):
    """One writer thread that records queued items a batch per transaction.

    `write(session, items)` adds the rows of `items` in the session's transaction and
    returns one result per item, or an exception for an item refused on its own (the
    refusal's rows, e.g. its audit entry, are committed with the batch). `on_failure(item)`
    runs for each item not recorded (refused or failed) before its caller is answered.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        write: BatchWrite[Item, Result],
        *,
        max_batch: int = 64,
        name: str = "group-commit",
        on_failure: Callable[[Item], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._write = write
        self._on_failure = on_failure
        self._max_batch = max_batch
        self._name = name
        self._queue: queue.SimpleQueue[_Pending[Item, Result] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, item: Item) -> Future[Result]:
        """Queue `item`; the future completes once its batch is committed (or has failed).

        Raises:
            RuntimeError: the writer was closed.
        """
        pending: _Pending[Item, Result] = _Pending(item)
        pending.future.set_running_or_notify_cancel()  # once queued, it is written: no cancel
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name} is closed; the service is shutting down")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put(pending)
        return pending.future

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout_s)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            try:
                self._commit(batch, alone_on_failure=len(batch) > 1)
            except Exception as exc:  # a fault of the writer itself: fail its callers, go on
                log.exception("%s: a batch of %d could not be answered", self._name, len(batch))
                for pending in batch:
                    if not pending.future.done():
                        self._fail(pending, exc)

    def _commit(self, batch: list[_Pending[Item, Result]], *, alone_on_failure: bool) -> None:
        try:
            with self._sessions() as session:
                results = self._write(session, [pending.item for pending in batch])
                session.commit()
        except Exception as exc:  # nothing of the batch was committed
            if alone_on_failure:
                log.warning("%s: a batch of %d failed (%s); writing each alone",
                            self._name, len(batch), type(exc).__name__)  # fmt: skip
                for pending in batch:
                    self._commit([pending], alone_on_failure=False)
            else:
                self._fail(batch[0], exc)
            return
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                self._fail(pending, result)
            else:
                pending.future.set_result(result)

    def _fail(self, pending: _Pending[Item, Result], error: BaseException) -> None:
        """Answer a caller whose item was not recorded, after `on_failure` has run."""
        try:
            if self._on_failure is not None:
                self._on_failure(pending.item)
        except Exception:
            log.exception("%s: cleaning up an item that was not recorded failed", self._name)
        finally:
            pending.future.set_exception(error)
