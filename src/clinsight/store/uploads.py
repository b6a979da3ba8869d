"""The store's side of one-call diagnosis under load: cheap access checks, grouped writes.

`UploadRecorder` checks a clinician's access on a read snapshot (no write lock); the
caller writes the encrypted image file in its own thread (`store.studies.stage_upload`
with the recorder's key ring and files folder); the recorder then records the study, its
prediction and their audit entries through a `GroupCommit` writer, so that uploads arriving
together share one transaction. The access check is repeated inside that transaction.

The recorder is the store's own transaction mechanism, so it commits: its read snapshot
(released at once) and, through `GroupCommit`, the writer's shared transactions, which no
request session can own. The access policy it applies comes from above (`UploadPolicy`,
`security.access.UPLOAD_POLICY`); a refusal is recorded with `audit.record_denial`.
"""

from __future__ import annotations

from concurrent.futures import Future
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from clinsight.store import audit
from clinsight.store.actors import Principal
from clinsight.store.crypto import KeyRing
from clinsight.store.group_commit import GroupCommit
from clinsight.store.studies import StagedUpload, StoredUpload, UploadPolicy, record_uploads

__all__ = ["UploadRecorder"]

ACTION = "prediction.create"


def _discard(upload: StagedUpload) -> None:
    upload.discard()  # looked up per call: tests slow it down to check the order


class UploadRecorder:
    """Records diagnosed uploads for many request threads (see the module docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session],
        keyring: KeyRing,
        files_dir: Path,
        *,
        policy: UploadPolicy,
    ) -> None:
        self._sessions = sessions
        self._policy = policy
        self._read_sessions = read_sessions
        self.keyring = keyring
        self.files_dir = files_dir
        self._writer: GroupCommit[StagedUpload, StoredUpload] = GroupCommit(
            sessions,
            partial(record_uploads, policy=policy),
            name="upload-writer",
            on_failure=_discard,
        )

    def check_access(self, actor: Principal, patient_id: str) -> None:
        """Refuse early, before the image is decoded, if `actor` may not open the patient.

        Raises:
            PermissionDeniedError: no care-team membership or live break-glass grant
                (the denial is audited and committed).
        """
        with self._read_sessions() as session:
            allowed = self._policy.access(session, actor, patient_id) is not None
            session.commit()  # ends the read snapshot at once
        if not allowed:
            with self._sessions() as session:
                # checked again in a write session, so a grant made meanwhile counts
                if self._policy.access(session, actor, patient_id) is None:
                    event, error = self._policy.denial(actor, patient_id, ACTION)
                    audit.record_denial(session, [event])
                    raise error

    def record(self, upload: StagedUpload) -> Future[StoredUpload]:
        """Record a staged upload; the future completes once it is committed. If it is not
        recorded (refused, or the store failed), its file is removed before it completes.

        Raises:
            RuntimeError: the recorder was closed (the file is removed).
        """
        try:
            return self._writer.submit(upload)
        except RuntimeError:
            upload.discard()
            raise

    def close(self) -> None:
        """Record what is queued, then stop the writer thread."""
        self._writer.close()
