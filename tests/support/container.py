"""Run the container image (deploy/Containerfile) from the host and talk to it over TLS.

Used by the slow image test and by benchmarks/image.py. The image runs with podman
through deploy/run-image.sh (vfs storage, runc, cgroupfs, host network, read-only root);
its CLINSIGHT_HOME and model registry are host folders prepared here, owned by the
image's user, with a tiny registered model in production and one clinician and patient.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from clinsight.config import Settings
from clinsight.registry import image
from clinsight.registry.stages import Stage
from clinsight.security.records import create_patient, create_user
from clinsight.services.bootstrap import bootstrap
from clinsight.store.actors import Principal
from clinsight.store.crypto import load_keyring
from clinsight.store.db import session_factory
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from tests.support.image_models import register_tiny
from tests.support.store import PASSWORD

__all__ = [
    "DEPLOY",
    "IMAGE_TAG",
    "IMAGE_UID",
    "MODEL",
    "Prepared",
    "container_started_at",
    "diagnose",
    "image_available",
    "png",
    "podman",
    "prepare",
    "remove",
    "start",
    "wait_ready",
]  # fmt: skip

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
IMAGE_TAG = "localhost/clinsight:latest"
IMAGE_UID = 10001
MODEL = "tiny"
PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]


def _environment() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(DEPLOY / "podman" / "containers.conf")}


def podman(*args: str, check: bool = True) -> str:
    """Run podman with the settings of deploy/env.sh; returns its standard output."""
    return subprocess.run(
        [*PODMAN, *args], check=check, capture_output=True, text=True, env=_environment()
    ).stdout


def image_available() -> bool:
    """Whether podman is installed and the image has been built (`make image`)."""
    if shutil.which("podman") is None:
        return False
    exists = subprocess.run(
        [*PODMAN, "image", "exists", IMAGE_TAG], env=_environment(), check=False
    )
    return exists.returncode == 0


@dataclass(frozen=True)
class Prepared:
    """A prepared CLINSIGHT_HOME and registry, and who to log in as."""

    home: Path
    registry: Path
    patient_id: str
    username: str = "clinician"
    password: str = PASSWORD


def seed_store(settings: Settings, *, mrn: str, name: str) -> str:
    """Bootstrap the store of `settings` (keys, TLS, admin) with the tiny model in
    production in its registry, a clinician and a patient; the patient's id."""
    registry = settings.resolved_registry_dir
    version, _ = register_tiny(registry, name=MODEL)
    image.REGISTRY.promote(registry, MODEL, version.version, Stage.PRODUCTION)
    result = bootstrap(settings, train_model=False)
    with session_factory(result.engine)() as session:
        user = create_user(session, settings, username="clinician", password=PASSWORD,
                           role=Role.CLINICIAN, actor=None)  # fmt: skip
        session.commit()
        keyring = load_keyring(settings.resolved_key_file)
        ctx = StoreContext(session, keyring, settings.resolved_files_dir,
                           Principal(user.id, user.username, user.role))  # fmt: skip
        patient = create_patient(ctx, mrn=mrn, name=name, birth_date=date(1970, 1, 1),
                                 sex="other")  # fmt: skip
        session.commit()
    result.engine.dispose()
    return str(patient.id)


def prepare(root: Path) -> Prepared:
    """Bootstrap a store in root/home (SQLite, keys, self-signed TLS, admin), a registry in
    root/registry with a tiny model in production, a clinician and a patient."""
    home, registry = root / "home", root / "registry"
    settings = Settings(home=home, registry_dir=registry, default_model=MODEL,
                        admin_password=PASSWORD)  # fmt: skip
    patient_id = seed_store(settings, mrn="IMAGE-1", name="Image Test")
    for folder in (root, home, registry):
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, IMAGE_UID, IMAGE_UID)
    return Prepared(home, registry, patient_id)


def start(name: str, prepared: Prepared, port: int, *extra: str) -> None:
    """Create and start the container `name` (production settings, one worker)."""
    settings = {
        "CLINSIGHT_JWT_SECRET": secrets.token_urlsafe(32),
        "CLINSIGHT_TLS_CERT_FILE": "/var/lib/clinsight/tls/cert.pem",
        "CLINSIGHT_TLS_KEY_FILE": "/var/lib/clinsight/tls/key.pem",
        "CLINSIGHT_DEFAULT_MODEL": MODEL,
        "CLINSIGHT_WORKERS": "1",
    }
    options = [item for key, value in settings.items() for item in ("-e", f"{key}={value}")]
    subprocess.run(
        ["bash", str(DEPLOY / "run-image.sh"), name, str(prepared.home),
         str(prepared.registry), str(port), *options, *extra],
        check=True, env=_environment(), capture_output=True,
    )  # fmt: skip


def container_started_at(name: str) -> float:
    """When the container's process was started (Unix time)."""
    stamp = podman("inspect", "--format", "{{.State.StartedAt}}", name).strip()
    # e.g. 2026-12-03 17:45:01.123456789 +0000 UTC
    day, clock, offset = stamp.split()[:3]
    whole, _, fraction = clock.partition(".")
    parsed = datetime.strptime(f"{day} {whole} {offset}", "%Y-%m-%d %H:%M:%S %z")
    return parsed.timestamp() + float(f"0.{fraction or '0'}")


def wait_ready(base: str, timeout_s: float) -> float:
    """Poll /ready until it answers 200; returns the Unix time it did.

    Raises:
        TimeoutError: not ready in time.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", verify=False, timeout=5).status_code == 200:
                return time.time()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base} was not ready within {timeout_s:.0f} s")


def png() -> bytes:
    """A 64x64 noise PNG."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def diagnose(base: str, prepared: Prepared) -> httpx.Response:
    """Log in as the clinician and diagnose one PNG for the prepared patient."""
    login = {"username": prepared.username, "password": prepared.password}
    with httpx.Client(base_url=base, verify=False, timeout=60) as client:
        token = client.post("/api/v1/auth/token", json=login).raise_for_status().json()
        return client.post(
            f"/api/v1/patients/{prepared.patient_id}/predictions",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            files={"file": ("image.png", png(), "image/png")},
        )


def remove(name: str) -> None:
    """Stop and remove the container (no error if it is gone)."""
    podman("rm", "--force", "--time", "10", name, check=False)
