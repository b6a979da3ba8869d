"""A request cancelled mid-way (shutdown's grace period over, a client gone) leaves no
encrypted file that no row names."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

import clinsight.api.routes.studies as studies_routes
import clinsight.services.predictions as predictions
from clinsight.services.diagnosis import diagnose_image
from clinsight.services.predictions import stage_diagnosis
from clinsight.store.tables import Study
from tests.support.service import Service


def test_an_upload_cancelled_while_its_image_is_staged_is_recorded_not_orphaned(
    service: Service, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = service.login("alice")
    patient = {"mrn": "MRN-C", "name": "Ada", "birth_date": "1980-01-01", "sex": "female"}
    patient_id = service.client.post("/api/v1/patients", headers=alice, json=patient).json()["id"]
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()
    staging, cancelled = threading.Event(), threading.Event()

    def held_diagnosis(*args: Any, **kwargs: Any) -> Any:  # the request is cancelled meanwhile
        staging.set()
        assert cancelled.wait(30)
        return diagnose_image(*args, **kwargs)

    staged = threading.Event()

    def stage_and_tell(*args: Any, **kwargs: Any) -> Any:
        try:
            return stage_diagnosis(*args, **kwargs)
        finally:
            staged.set()

    monkeypatch.setattr(predictions, "diagnose_image", held_diagnosis)
    monkeypatch.setattr(studies_routes, "stage_diagnosis", stage_and_tell)
    app = service.client.app
    state = app.state.clinsight  # type: ignore[attr-defined]

    async def cancel_mid_way() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as ac:
            url = f"/api/v1/patients/{patient_id}/predictions?confirm_patient_mismatch=true"
            request = asyncio.ensure_future(
                ac.post(url, headers=alice, files={"file": ("x.dcm", dicom)})
            )
            await asyncio.get_running_loop().run_in_executor(None, staging.wait, 30)
            request.cancel()
            cancelled.set()
            with pytest.raises(asyncio.CancelledError):
                await request

    asyncio.run(cancel_mid_way())
    assert staged.wait(30)
    deadline = time.monotonic() + 10  # the row's commit follows the file's write
    files, studies = _files_and_studies(state)
    while not files == studies != set() and time.monotonic() < deadline:
        time.sleep(0.05)
        files, studies = _files_and_studies(state)
    assert files == studies != set(), "an encrypted file that no row names"


def _files_and_studies(state: Any) -> tuple[set[str], set[str]]:
    """Ids of the encrypted files on disk and of the study rows."""
    with state.sessions() as session:
        studies = set(session.execute(select(Study.id)).scalars())
    files = {p.name.removesuffix(".enc") for p in state.settings.resolved_files_dir.rglob("*.enc")}
    return files, studies
