"""Two `clinsight serve` replicas on one PostgreSQL database behind HAProxy (slow).

Clients post diagnoses through the proxy; one replica is killed with SIGKILL mid-load.
Every acknowledged prediction (201) must be in the database afterwards, the audit chain
must verify, and the survivor must go on serving through the proxy. Needs PostgreSQL on
127.0.0.1:5432 (database `test`) and Debian's `haproxy`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.registry import image
from clinsight.registry.stages import Stage
from clinsight.security.records import create_patient, create_user
from clinsight.services.bootstrap import bootstrap
from clinsight.store import audit
from clinsight.store.actors import Principal
from clinsight.store.crypto import load_keyring
from clinsight.store.db import create_db_engine, session_factory
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from tests.support.container import MODEL, png
from tests.support.image_models import register_tiny
from tests.support.store import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
CLIENTS = 4


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Cluster:
    proxy: str
    replicas: list[subprocess.Popen[bytes]]
    url: str
    patient_id: str


@pytest.fixture(scope="module")
def database_url(postgres_url: str) -> Iterator[str]:
    schema = f"clinsight_replicas_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _prepare(root: Path, url: str) -> tuple[dict[str, str], str]:
    """Shared state of the replicas: the database, the key ring, the registry, the files."""
    shared = {
        "CLINSIGHT_DATABASE_URL": url,
        "CLINSIGHT_KEY_FILE": str(root / "keys" / "data.key"),
        "CLINSIGHT_REGISTRY_DIR": str(root / "registry"),
        "CLINSIGHT_FILES_DIR": str(root / "files"),
        "CLINSIGHT_DEFAULT_MODEL": MODEL,
        "CLINSIGHT_ADMIN_PASSWORD": PASSWORD,
        "CLINSIGHT_WORKERS": "1",
        "CLINSIGHT_THREADS": "1",
    }
    version, _ = register_tiny(root / "registry", name=MODEL)
    image.REGISTRY.promote(root / "registry", MODEL, version.version, Stage.PRODUCTION)
    settings = Settings(home=root / "bootstrap", database_url=url,
                        key_file=root / "keys" / "data.key", registry_dir=root / "registry",
                        files_dir=root / "files", default_model=MODEL,
                        admin_password=PASSWORD)  # fmt: skip
    result = bootstrap(settings, train_model=False)
    with session_factory(result.engine)() as session:
        user = create_user(session, settings, username="clinician", password=PASSWORD,
                           role=Role.CLINICIAN, actor=None)  # fmt: skip
        session.commit()
        ctx = StoreContext(session, load_keyring(settings.resolved_key_file),
                           settings.resolved_files_dir,
                           Principal(user.id, user.username, user.role))  # fmt: skip
        patient = create_patient(ctx, mrn="REPLICA-1", name="Replica Test",
                                 birth_date=date(1970, 1, 1), sex="other")  # fmt: skip
        session.commit()
    result.engine.dispose()
    return shared, patient.id


def _haproxy(root: Path, port: int, backends: list[int]) -> subprocess.Popen[bytes]:
    servers = "\n".join(f"    server r{i} 127.0.0.1:{p}" for i, p in enumerate(backends))
    config = root / "haproxy.cfg"
    config.write_text(f"""global
    maxconn 256
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch
frontend https
    bind 127.0.0.1:{port}
    default_backend api
backend api
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    default-server check check-ssl verify none inter 500ms fall 2 rise 1
{servers}
""")
    return subprocess.Popen(["haproxy", "-db", "-f", str(config)])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Cluster]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    root = tmp_path_factory.mktemp("replicas")
    shared, patient_id = _prepare(root, database_url)
    ports = [_port(), _port()]
    replicas = []
    for index, port in enumerate(ports):
        env = {**os.environ, **shared, "CLINSIGHT_HOME": str(root / f"home{index}"),
               "CLINSIGHT_PORT": str(port)}  # fmt: skip
        command = [sys.executable, "-m", "clinsight", "serve", "--no-train"]
        quiet = subprocess.DEVNULL
        replica = subprocess.Popen(command, env=env, stdout=quiet, stderr=quiet,
                                   start_new_session=True)  # fmt: skip
        replicas.append(replica)
    proxy_port = _port()
    proxy = _haproxy(root, proxy_port, ports)
    try:
        for port in ports:
            _wait_ready(f"https://127.0.0.1:{port}", 900)
        base = f"https://127.0.0.1:{proxy_port}"
        _wait_ready(base, 30)
        yield Cluster(base, replicas, database_url, patient_id)
    finally:
        proxy.terminate()
        for process in replicas:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


def _wait_ready(base: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", verify=False, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base} not ready in {timeout_s} s")


@dataclass
class Load:
    acked: list[str] = field(default_factory=list)
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


def _client(cluster: Cluster, token: str, load: Load) -> None:
    content = png()
    path = f"/api/v1/patients/{cluster.patient_id}/predictions"
    with httpx.Client(base_url=cluster.proxy, verify=False, timeout=30) as client:
        while not load.stop.is_set():
            try:
                response = client.post(path, headers={"Authorization": f"Bearer {token}"},
                                       files={"file": ("x.png", content, "image/png")})  # fmt: skip
            except httpx.HTTPError:
                load.errors += 1
                continue
            if response.status_code == 201:
                load.acked.append(response.json()["id"])
            else:
                load.errors += 1


def test_a_killed_replica_loses_no_acknowledged_prediction(cluster: Cluster) -> None:
    login = {"username": "clinician", "password": PASSWORD}
    token = httpx.post(f"{cluster.proxy}/api/v1/auth/token", json=login, verify=False,
                       timeout=30).raise_for_status().json()["access_token"]  # fmt: skip
    load = Load()
    clients = [
        threading.Thread(target=_client, args=(cluster, token, load)) for _ in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    time.sleep(10)
    before_kill = len(load.acked)
    victim = cluster.replicas[0]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(10)
    killed_at = len(load.acked)
    time.sleep(15)
    load.stop.set()
    for thread in clients:
        thread.join(60)
    after_kill = len(load.acked) - killed_at
    assert before_kill > 0
    assert after_kill > 0, "the survivor served nothing through the proxy"
    engine = create_db_engine(cluster.url)
    try:
        with Session(engine) as session:
            stored = set(session.execute(sa.text("SELECT id FROM predictions")).scalars())
            verification = audit.verify(session)
            tables = session.execute(sa.text(
                "SELECT relname, n_tup_ins, n_tup_upd, pg_total_relation_size(relid) "
                "FROM pg_stat_user_tables WHERE schemaname = current_schema()")).all()  # fmt: skip
    finally:
        engine.dispose()
    lost = [prediction for prediction in load.acked if prediction not in stored]
    assert lost == [], f"{len(lost)} acknowledged predictions lost"
    assert verification.ok, verification.problem
    # The survivor still answers through the proxy.
    assert httpx.get(f"{cluster.proxy}/ready", verify=False, timeout=10).status_code == 200
    # What a prediction costs the database (docs/capacity.md), printed with -s.
    rows = {name: (inserted, updated, size) for name, inserted, updated, size in tables}
    count = len(stored)
    stored_bytes = sum(rows[t][2] for t in ("predictions", "studies", "audit_log"))
    print(f"acked {len(load.acked)} ({after_kill} after the kill), errors {load.errors}, lost 0;"
          f" per stored prediction ({count}): rows inserted "
          f"{sum(r[0] for r in rows.values()) / count:.2f}, rows updated "
          f"{sum(r[1] for r in rows.values()) / count:.2f}, bytes of predictions+studies+audit "
          f"{stored_bytes / count:.0f}")  # fmt: skip
