"""The container image, run from the host (slow: `make image-test`; needs `make image`).

It starts with production settings, a read-only root, no capabilities and the image's
non-root user, and answers /health, /ready and a diagnosis over TLS.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import container

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, container.Prepared]]:
    if not container.image_available():
        pytest.skip("the image is not built (make image) or podman is missing")
    prepared = container.prepare(tmp_path_factory.mktemp("image"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    name = f"clinsight-test-{uuid.uuid4().hex[:8]}"
    container.start(name, prepared, port)
    try:
        base = f"https://127.0.0.1:{port}"
        container.wait_ready(base, timeout_s=900)
        yield base, prepared
    finally:
        container.remove(name)


def test_health_and_ready_answer_over_tls(running: tuple[str, container.Prepared]) -> None:
    base, _ = running
    with pytest.raises(httpx.HTTPError):  # no plain HTTP
        httpx.get(base.replace("https", "http") + "/health", timeout=5)
    assert httpx.get(f"{base}/health", verify=False, timeout=10).status_code == 200
    assert httpx.get(f"{base}/ready", verify=False, timeout=10).status_code == 200


def test_a_diagnosis_is_made_and_stored(running: tuple[str, container.Prepared]) -> None:
    base, prepared = running
    response = container.diagnose(base, prepared)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["model_name"] == "tiny"
    assert body["predicted_label"]
    assert list((prepared.home / "files").rglob("*")), "the upload was stored in the volume"


def test_the_container_runs_hardened(running: tuple[str, container.Prepared]) -> None:
    names = container.podman("ps", "--format", "{{.Names}}").split()
    (name,) = [n for n in names if n.startswith("clinsight-test-")]
    (info,) = json.loads(container.podman("inspect", name))
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["Config"]["User"] == "10001:10001"
    assert "no-new-privileges" in " ".join(info["HostConfig"]["SecurityOpt"])
    assert not info["EffectiveCaps"]
    assert info["Config"]["Healthcheck"]["Test"][0] == "CMD"
    mounts = {m["Destination"]: Path(m["Source"]) for m in info["Mounts"]}
    assert mounts["/var/lib/clinsight/registry"] == running[1].registry  # mounted, not baked
