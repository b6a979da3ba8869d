"""The container image: build minutes, size, and start-to-ready seconds (part `image` of
issue 18's scale figures; the lead may merge it into benchmarks/scale.py).

Build time and size come from the last `make image` (deploy/build-image.sh writes
build/image/build.json: buildah bud of deploy/Containerfile, vfs storage, chroot
isolation, from the debootstrap base and the host wheelhouse; the base and the wheelhouse
are timed apart in their logs). Then the image is run as deploy/run-image.sh runs it
(read-only root, no capabilities, uid 10001, one worker, a tiny model in the mounted
registry), `create` (with vfs, a full copy of the image's file system) and the start are
timed apart, start-to-ready is from the container's start to the first 200 from /ready,
and one diagnosis over TLS is made. Usage: python benchmarks/image.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import update_readme_section, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the container helpers live with the tests' support code
from tests.support import container  # noqa: E402

BUILD_JSON = ROOT / "build" / "image" / "build.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_once(root: Path) -> dict[str, Any]:
    prepared = container.prepare(root)
    port, name = _free_port(), f"clinsight-bench-{uuid.uuid4().hex[:8]}"
    began = time.time()
    container.start(name, prepared, port)
    try:
        started = container.container_started_at(name)
        ready = container.wait_ready(f"https://127.0.0.1:{port}", timeout_s=1800)
        before = time.monotonic()
        response = container.diagnose(f"https://127.0.0.1:{port}", prepared)
        diagnosis_ms = (time.monotonic() - before) * 1000
    finally:
        container.remove(name)
    return {
        "create_seconds": round(started - began, 1),
        "start_to_ready_seconds": round(ready - started, 1),
        "diagnosis_status": response.status_code,
        "first_diagnosis_ms_with_login": round(diagnosis_ms, 1),
    }


def _table(results: dict[str, Any]) -> str:
    return "\n".join([
        "## Container image (`python benchmarks/image.py`)",
        "",
        results["method"],
        "",
        "| build minutes | image size (MB) | create (s) | start-to-ready (s) | diagnosis |",
        "| --- | --- | --- | --- | --- |",
        f"| {results['build_minutes']} | {results['size_mb']} | "
        f"{results['create_seconds']} | {results['start_to_ready_seconds']} | "
        f"HTTP {results['runs'][0]['diagnosis_status']} |",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1, help="Container starts to time.")
    args = parser.parse_args()
    if not container.image_available() or not BUILD_JSON.exists():
        raise SystemExit("build the image first: make image")
    build = json.loads(BUILD_JSON.read_text())
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            runs.append(_run_once(Path(folder)))
    results = {
        "image": container.IMAGE_TAG,
        "build_minutes": round(build["build_seconds"] / 60, 1),
        "size_mb": round(build["size_bytes"] / 1e6),
        "create_seconds": statistics.median(r["create_seconds"] for r in runs),
        "start_to_ready_seconds": statistics.median(r["start_to_ready_seconds"] for r in runs),
        "runs": runs,
        "budget": {"runs": args.runs, "workers": 1},
        "method": (
            "Build: buildah bud (chroot isolation, vfs storage) of deploy/Containerfile from the"
            " debootstrap base and the host wheelhouse, on the shared 2-core host, timed by "
            "deploy/build-image.sh. Size: podman's image size (uncompressed). Run: "
            "deploy/run-image.sh (podman, vfs, runc, host network, read-only root, no "
            "capabilities), production settings, 1 worker, a tiny model in the mounted "
            "registry; create = podman create (vfs copies the whole file system), "
            "start-to-ready = container start to the first 200 from /ready. The host was "
            "shared with other jobs (load average above 10 at times): times are upper bounds."
        ),
    }
    write_results("image", results)
    update_readme_section("image", _table(results))
    print(json.dumps({k: v for k, v in results.items() if k != "method"}, indent=2))


if __name__ == "__main__":
    main()
