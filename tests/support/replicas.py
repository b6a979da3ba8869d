"""Replicas of `clinsight serve` on one PostgreSQL schema behind HAProxy, and a load of
diagnoses through the proxy: used by the replica test and `benchmarks/scale.py --part
replicas`. Needs PostgreSQL and Debian's `haproxy`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.store import audit
from clinsight.store.db import create_db_engine
from tests.support.container import MODEL, png, seed_store
from tests.support.store import PASSWORD


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def fresh_schema(postgres_url: str) -> Iterator[str]:
    """A URL whose search path is a new schema, dropped afterwards."""
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
    settings = Settings(home=root / "bootstrap", database_url=url,
                        key_file=root / "keys" / "data.key", registry_dir=root / "registry",
                        files_dir=root / "files", default_model=MODEL,
                        admin_password=PASSWORD)  # fmt: skip
    return shared, seed_store(settings, mrn="REPLICA-1", name="Replica Test")


def start_proxy(root: Path, port: int, backends: list[int]) -> subprocess.Popen[bytes]:
    """HAProxy on `port` (TCP, TLS passed through), round robin over `backends`, each
    checked on `/ready`."""
    servers = "\n".join(f"    server r{i} 127.0.0.1:{p}" for i, p in enumerate(backends))
    config = root / f"haproxy-{port}.cfg"
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


def wait_ready(base: str, timeout_s: float) -> None:
    """Wait until `base`/ready answers 200.

    Raises:
        TimeoutError: it did not within `timeout_s`.
    """
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
class Cluster:
    """The running replicas (their ports), the database URL and the test patient."""

    root: Path
    replicas: list[subprocess.Popen[bytes]]
    ports: list[int]
    url: str
    patient_id: str
    proxies: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def proxy(self, backends: list[int]) -> str:
        """Start a proxy over the replicas at `backends` (indices); its base URL when ready."""
        port = free_port()
        self.proxies.append(start_proxy(self.root, port, [self.ports[i] for i in backends]))
        base = f"https://127.0.0.1:{port}"
        wait_ready(base, 30)
        return base

    def kill(self, index: int) -> None:
        """SIGKILL replica `index` (its whole process group)."""
        victim = self.replicas[index]
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(10)


@contextmanager
def running_cluster(root: Path, url: str, replicas: int = 2) -> Iterator[Cluster]:
    """`replicas` `clinsight serve` processes (1 worker, 1 thread each) on the database at
    `url`, sharing one key ring, registry and files folder; stopped afterwards."""
    shared, patient_id = _prepare(root, url)
    ports = [free_port() for _ in range(replicas)]
    processes = []
    for index, port in enumerate(ports):
        env = {**os.environ, **shared, "CLINSIGHT_HOME": str(root / f"home{index}"),
               "CLINSIGHT_PORT": str(port)}  # fmt: skip
        command = [sys.executable, "-m", "clinsight", "serve", "--no-train"]
        quiet = subprocess.DEVNULL
        processes.append(subprocess.Popen(command, env=env, stdout=quiet, stderr=quiet,
                                          start_new_session=True))  # fmt: skip
    cluster = Cluster(root, processes, ports, url, patient_id)
    try:
        for port in ports:
            wait_ready(f"https://127.0.0.1:{port}", 900)
        yield cluster
    finally:
        for proxy in cluster.proxies:
            proxy.terminate()
            proxy.wait(10)
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


def token(base: str) -> str:
    """An access token of the cluster's clinician."""
    login = {"username": "clinician", "password": PASSWORD}
    response = httpx.post(f"{base}/api/v1/auth/token", json=login, verify=False, timeout=30)
    value: str = response.raise_for_status().json()["access_token"]
    return value


@dataclass
class Load:
    """Clients posting diagnoses through a proxy until stopped: the acknowledged
    prediction ids (201), with their times, and the count of failed requests."""

    base: str
    patient_id: str
    token: str
    acked: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int) -> None:
        """Start `clients` client threads."""
        self.threads = [threading.Thread(target=self._client) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        """Stop the clients and wait for them."""
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _client(self) -> None:
        content = png()
        path = f"/api/v1/patients/{self.patient_id}/predictions"
        headers = {"Authorization": f"Bearer {self.token}"}
        files = {"file": ("x.png", content, "image/png")}
        with httpx.Client(base_url=self.base, verify=False, timeout=30) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    response = client.post(path, headers=headers, files=files)
                except httpx.HTTPError:
                    self.errors += 1
                    continue
                if response.status_code == 201:
                    self.acked.append(response.json()["id"])
                    self.latencies.append(time.perf_counter() - started)
                else:
                    self.errors += 1


@dataclass(frozen=True)
class Durability:
    """What the database holds after a load: the acknowledged ids it lacks, the audit
    chain's verification, and the rows and bytes per stored prediction."""

    lost: list[str]
    audit_ok: bool
    audit_problem: str | None
    stored: int
    rows_inserted_per_prediction: float
    rows_updated_per_prediction: float
    bytes_per_prediction: float


def check_durability(url: str, acked: list[str]) -> Durability:
    """Compare the acknowledged predictions with the database and verify the audit chain."""
    engine = create_db_engine(url)
    try:
        with Session(engine) as session:
            stored = set(session.execute(sa.text("SELECT id FROM predictions")).scalars())
            verification = audit.verify(session)
            tables = session.execute(sa.text(
                "SELECT relname, n_tup_ins, n_tup_upd, pg_total_relation_size(relid) "
                "FROM pg_stat_user_tables WHERE schemaname = current_schema()")).all()  # fmt: skip
    finally:
        engine.dispose()
    rows = {name: (inserted, updated, size) for name, inserted, updated, size in tables}
    count = max(len(stored), 1)
    stored_bytes = sum(rows[t][2] for t in ("predictions", "studies", "audit_log"))
    return Durability(
        lost=[prediction for prediction in acked if prediction not in stored],
        audit_ok=verification.ok, audit_problem=verification.problem, stored=len(stored),
        rows_inserted_per_prediction=sum(r[0] for r in rows.values()) / count,
        rows_updated_per_prediction=sum(r[1] for r in rows.values()) / count,
        bytes_per_prediction=stored_bytes / count,
    )  # fmt: skip
