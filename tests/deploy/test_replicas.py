"""Two `clinsight serve` replicas on one PostgreSQL database behind HAProxy (slow).

Clients post diagnoses through the proxy; one replica is killed with SIGKILL mid-load.
Every acknowledged prediction (201) must be in the database afterwards, the audit chain
must verify, and the survivor must go on serving through the proxy. Needs PostgreSQL on
127.0.0.1:5432 (database `test`) and Debian's `haproxy`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.replicas import (
    Cluster,
    Load,
    check_durability,
    fresh_schema,
    running_cluster,
    token,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
CLIENTS = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Cluster]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    root = tmp_path_factory.mktemp("replicas")
    with fresh_schema(postgres_url) as url, running_cluster(root, url) as running:
        yield running


def test_a_killed_replica_loses_no_acknowledged_prediction(cluster: Cluster) -> None:
    base = cluster.proxy([0, 1])
    load = Load(base, cluster.patient_id, token(base))
    load.start(CLIENTS)
    time.sleep(10)
    before_kill = len(load.acked)
    cluster.kill(0)
    killed_at = len(load.acked)
    time.sleep(15)
    load.finish()
    after_kill = len(load.acked) - killed_at
    assert before_kill > 0
    assert after_kill > 0, "the survivor served nothing through the proxy"
    durability = check_durability(cluster.url, load.acked)
    assert durability.lost == [], f"{len(durability.lost)} acknowledged predictions lost"
    assert durability.audit_ok, durability.audit_problem
    # The survivor still answers through the proxy.
    assert httpx.get(f"{base}/ready", verify=False, timeout=10).status_code == 200
    # What a prediction costs the database (docs/capacity.md), printed with -s.
    print(f"acked {len(load.acked)} ({after_kill} after the kill), errors {load.errors}, lost 0;"
          f" per stored prediction ({durability.stored}): rows inserted "
          f"{durability.rows_inserted_per_prediction:.2f}, rows updated "
          f"{durability.rows_updated_per_prediction:.2f}, bytes of predictions+studies+audit "
          f"{durability.bytes_per_prediction:.0f}")  # fmt: skip
