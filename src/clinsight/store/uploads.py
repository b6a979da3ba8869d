"""The store's side of one-call diagnosis under load: cheap access checks, grouped writes.

`UploadRecorder` checks a clinician's access on a read snapshot (no write lock); the
caller writes the encrypted image file in its own thread (`store.studies.stage_upload`
with the recorder's key ring and files folder); the recorder then records the study, its
prediction and their audit entries through a `GroupCommit` writer, so that uploads arriving
together share one transaction. The access check is repeated inside that transaction.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from clinsight.security.access import Principal, can_access_patient, require_patient_access
from clinsight.store.crypto import KeyRing
from clinsight.store.group_commit import GroupCommit
from clinsight.store.studies import StagedUpload, StoredUpload, record_uploads

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
    ) -> None:
        self._sessions = sessions
        self._read_sessions = read_sessions
        self.keyring = keyring
        self.files_dir = files_dir
        self._writer: GroupCommit[StagedUpload, StoredUpload] = GroupCommit(
            sessions, record_uploads, name="upload-writer", on_failure=_discard
        )

    def check_access(self, actor: Principal, patient_id: str) -> None:
        """Refuse early, before the image is decoded, if `actor` may not open the patient.

        Raises:
            PermissionDeniedError: no care-team membership or live break-glass grant
                (the denial is audited and committed).
        """
        with self._read_sessions() as session:
            allowed = can_access_patient(session, actor, patient_id) is not None
            session.commit()
        if not allowed:
            with self._sessions() as session:
                require_patient_access(session, actor, patient_id, ACTION)  # audits, raises

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
