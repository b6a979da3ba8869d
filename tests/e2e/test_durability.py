"""Durability: SIGKILL the real HTTPS server during concurrent prediction writes, restart it.

Each cycle starts `python -m clinsight serve` (SQLite, WAL, synchronous=FULL) on a free
loopback port, lets several client threads create predictions (half on a stored study,
half uploading and diagnosing in one call), kills the server's whole process group with
SIGKILL at a random moment, then checks that every acknowledged (201) prediction is in
the database, `PRAGMA integrity_check` is ok and the audit chain verifies.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import httpx
import pytest
from PIL import Image

from clinsight.config import Settings
from clinsight.security.clinical import add_study
from clinsight.security.records import create_patient, create_user
from clinsight.services.bootstrap import bootstrap
from clinsight.store import audit
from clinsight.store.actors import Principal
from clinsight.store.crypto import load_keyring
from clinsight.store.db import create_db_engine, session_factory
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from tests.support.service import PASSWORD

CLIENTS = 4
START_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare(settings: Settings, tmp_path: Path) -> tuple[str, str, bytes]:
    """Bootstrap the store, add clinician alice and a patient with one PNG study; the
    patient's id, the study's id and the PNG."""
    result = bootstrap(settings, train_model=False)
    image = tmp_path / "x.png"
    Image.new("L", (64, 64), 100).save(image)
    with session_factory(result.engine)() as session:
        user = create_user(session, settings, username="alice", password=PASSWORD,
                           role=Role.CLINICIAN, actor=None)  # fmt: skip
        session.commit()
        alice = Principal(user.id, user.username, user.role)
        keyring = load_keyring(settings.resolved_key_file)
        ctx = StoreContext(session, keyring, settings.resolved_files_dir, alice)
        patient = create_patient(
            ctx, mrn="MRN-D", name="Ada Lovelace", birth_date=date(1980, 1, 1), sex="female"
        )
        study = add_study(ctx, patient.id, image.read_bytes(), modality="OT")
        session.commit()
    result.engine.dispose()
    return patient.id, study.id, image.read_bytes()


def _start(port: int, log: Path, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CLINSIGHT_PORT": str(port), "CLINSIGHT_HOST": "127.0.0.1",
           "CLINSIGHT_WORKERS": str(workers)}  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "clinsight", "serve", "--no-train"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"https://127.0.0.1:{port}/health", verify=False, timeout=1).is_success:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")


def _writer(
    base: str, target: tuple[str, str, bytes], upload: bool, acked: list[str], stop: threading.Event
) -> None:
    patient_id, study_id, image = target
    with httpx.Client(base_url=base, verify=False, timeout=10) as client:
        try:
            login = {"username": "alice", "password": PASSWORD}
            token = client.post("/api/v1/auth/token", json=login).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            while not stop.is_set():
                if upload:
                    url = f"/api/v1/patients/{patient_id}/predictions"
                    files = {"file": ("x.png", image)}
                    response = client.post(url, headers=headers, files=files)
                else:
                    response = client.post(
                        f"/api/v1/studies/{study_id}/predictions", headers=headers
                    )
                if response.status_code == 201:
                    acked.append(response.json()["id"])
        except (httpx.HTTPError, KeyError, ValueError):
            return  # the server died mid-request: that request was never acknowledged


def _check_store(settings: Settings, acked: list[str]) -> int:
    database = settings.home / "clinsight.db"
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in connection.execute("SELECT id FROM predictions")}
    missing = set(acked) - stored
    assert missing == set(), f"{len(missing)} acknowledged predictions were lost"
    engine = create_db_engine(settings=settings)
    with session_factory(engine)() as session:
        chain = audit.verify(session)
    engine.dispose()
    assert chain.ok, chain.problem
    return len(stored)


def _cycles(settings: Settings, tmp_path: Path, cycles: int, workers: int) -> None:
    target = _prepare(settings, tmp_path)
    rng = random.Random(20240611)
    total_acked: list[str] = []
    for _ in range(cycles):
        port = _free_port()
        process = _start(port, tmp_path / "server.log", workers)
        acked: list[str] = []
        stop = threading.Event()
        base = f"https://127.0.0.1:{port}"
        threads = [
            threading.Thread(target=_writer, args=(base, target, n % 2 == 0, acked, stop))
            for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.5, 2.5))
        os.killpg(process.pid, signal.SIGKILL)  # the server and any worker processes
        process.wait(10)
        stop.set()
        for thread in threads:
            thread.join(15)
        total_acked += acked
        stored = _check_store(settings, total_acked)
        assert stored >= len(total_acked)
    assert len(total_acked) > 0, "no prediction was acknowledged in any cycle"


def test_sigkill_loses_no_acknowledged_prediction_3_cycles(
    settings: Settings, tmp_path: Path
) -> None:
    _cycles(settings, tmp_path, 3, workers=1)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_loses_no_acknowledged_prediction_20_cycles(
    settings: Settings, tmp_path: Path, workers: int
) -> None:
    _cycles(settings, tmp_path, 20, workers)
