"""The shared artifact location: a registry folder mirrored to an fsspec URL.

Replicas on several machines serve the same models when `CLINSIGHT_REGISTRY_URL` names
an object store or a shared file system that fsspec reaches (``s3://bucket/registry``,
``gs://``, ``az://``, ``file:///mnt/shared/registry``; ``memory://`` in tests). Its
credentials come from fsspec's own configuration (``FSSPEC_S3_KEY`` and the like), never
from Clinsight's settings.

The local registry folder stays the working copy that every reader uses (manifests are
verified and ONNX sessions opened from disk); the remote holds the same relative paths.
- A new version is uploaded before it is renamed into place locally, its manifest last,
  so a half-uploaded version is never pulled; a version number already taken remotely is
  refused (registered elsewhere at the same moment: register again).
- A stage record is written remotely first, then locally: a stage change that cannot
  reach the shared location changes nothing.
- Pulls bring versions whose remote manifest exists and the local folder lacks (verified
  against their manifest before the rename) and stage records that differ. The model
  cache pulls at most every `interval_s` seconds; writers pull the model they change first,
  under its lock.

Two machines changing the same model's stages in the same instant can still race (the
last write wins); stage changes go through the audited service, which records both.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinsight.config import Settings
from clinsight.errors import IntegrityError, RegistryError
from clinsight.files import write_text_atomic
from clinsight.registry.manifest import MANIFEST_FILE, verify_manifest

__all__ = [
    "RegistryMirror",
    "attach",
    "attach_configured",
    "detach",
    "mirror_for",
    "pull_due",
]

STAGES_NAME = "stages.json"
_VERSION_DIR = re.compile(r"^\d+$")


@dataclass
class RegistryMirror:
    """The registry folder `local_dir` mirrored to `url` (any fsspec URL)."""

    local_dir: Path
    url: str
    interval_s: float = 10.0
    _fs: Any = field(init=False, repr=False)
    _base: str = field(init=False, repr=False)
    _last_pull: float = field(default=float("-inf"), init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        import fsspec

        self.local_dir = Path(self.local_dir).resolve()
        try:
            self._fs, base = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            raise RegistryError(
                f"CLINSIGHT_REGISTRY_URL {self.url!r} cannot be opened ({exc}); install the "
                f"fsspec back-end for its scheme (s3fs, gcsfs, adlfs) or correct the URL."
            ) from exc
        self._base = base.rstrip("/")

    def _remote(self, local: Path) -> str:
        relative = Path(local).resolve().relative_to(self.local_dir).as_posix()
        return self._base if relative == "." else f"{self._base}/{relative}"

    def _fail(self, action: str, exc: Exception) -> RegistryError:
        return RegistryError(
            f"Could not {action} the shared registry at {self.url} ({exc}); nothing was "
            f"changed. Check that it is reachable and writable, then try again."
        )

    # -- writing ------------------------------------------------------------------------

    def put_stages(self, root: Path, text: str) -> None:
        """Write model folder `root`'s stage record remotely.

        Raises:
            RegistryError: the shared location cannot be written.
        """
        target = self._remote(root / STAGES_NAME)
        try:
            self._fs.makedirs(self._remote(root), exist_ok=True)
            self._fs.pipe_file(target, text.encode("utf-8"))
        except OSError as exc:
            raise self._fail("write the stage record to", exc) from exc

    def put_version(self, root: Path, staging: Path, version: int) -> None:
        """Upload the finished version folder `staging` as `root`/`version`, manifest last.

        Raises:
            RegistryError: the number is taken remotely, or the location cannot be written.
        """
        target = self._remote(root / str(version))
        try:
            if self._fs.exists(f"{target}/{MANIFEST_FILE}"):
                raise RegistryError(
                    f"Version {version} of {root.name!r} was registered on another machine "
                    f"at the same moment; register the model again."
                )
            files = sorted(p for p in staging.rglob("*") if p.is_file())
            for path in sorted(files, key=lambda p: p.name == MANIFEST_FILE):
                remote = f"{target}/{path.relative_to(staging).as_posix()}"
                self._fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
                self._fs.pipe_file(remote, path.read_bytes())
        except OSError as exc:
            raise self._fail("upload the new version to", exc) from exc

    def push_all(self) -> int:
        """Upload every local version and stage record the remote lacks or holds differently
        (stage records); return the number of files written. For seeding a new location.

        Raises:
            RegistryError: the shared location cannot be written.
        """
        written = 0
        for stages in sorted(self.local_dir.rglob(STAGES_NAME)):
            root = stages.parent
            remote = self._remote(stages)
            try:
                present = self._fs.cat_file(remote) if self._fs.exists(remote) else None
            except OSError as exc:
                raise self._fail("read", exc) from exc
            for folder in sorted(p for p in root.iterdir() if _VERSION_DIR.match(p.name)):
                if not self._remote_has_version(root, int(folder.name)):
                    self.put_version(root, folder, int(folder.name))
                    written += sum(1 for p in folder.rglob("*") if p.is_file())
            if present != stages.read_bytes():
                self.put_stages(root, stages.read_text(encoding="utf-8"))
                written += 1
        return written

    def _remote_has_version(self, root: Path, version: int) -> bool:
        try:
            return bool(self._fs.exists(f"{self._remote(root / str(version))}/{MANIFEST_FILE}"))
        except OSError as exc:
            raise self._fail("read", exc) from exc

    # -- reading ------------------------------------------------------------------------

    def pull(self) -> int:
        """Bring every remote model's new versions and changed stage record into the local
        folder; return the number of model folders updated.

        Raises:
            RegistryError: the shared location cannot be read.
            IntegrityError: a pulled version fails its manifest, or a local version differs
                from the remote one of the same number.
        """
        try:
            listing = self._fs.find(self._base) if self._fs.exists(self._base) else []
        except OSError as exc:
            raise self._fail("list", exc) from exc
        roots = sorted(
            {
                path[len(self._base) :].strip("/").rsplit("/", 1)[0]
                for path in listing
                if path.endswith("/" + STAGES_NAME)
            }
        )
        self._last_pull = time.monotonic()
        return sum(self.pull_model(self.local_dir / relative) for relative in roots)

    def pull_due(self) -> None:
        """Pull when the last pull is older than `interval_s` (the model cache's check); one
        thread pulls, the others go on with the local copy."""
        if time.monotonic() - self._last_pull < self.interval_s:
            return
        if self._lock.acquire(blocking=False):
            try:
                if time.monotonic() - self._last_pull >= self.interval_s:
                    self.pull()
            finally:
                self._lock.release()

    def pull_model(self, root: Path) -> bool:
        """Bring model folder `root`'s new versions and stage record from the remote; return
        whether anything changed locally. Callers that then write hold the model's lock.

        Raises:
            RegistryError: the shared location cannot be read.
            IntegrityError: a pulled version fails its manifest.
        """
        remote_root = self._remote(root)
        try:
            if not self._fs.exists(f"{remote_root}/{STAGES_NAME}"):
                return False
            listed = self._fs.ls(remote_root, detail=False)
            names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in listed]
            stages = self._fs.cat_file(f"{remote_root}/{STAGES_NAME}")
        except OSError as exc:
            raise self._fail("read", exc) from exc
        changed = False
        root.mkdir(parents=True, exist_ok=True)
        for name in sorted(n for n in names if _VERSION_DIR.match(n)):
            if not (root / name).is_dir() and self._remote_has_version(root, int(name)):
                self._download_version(root, name)
                changed = True
        local = root / STAGES_NAME
        if not local.exists() or local.read_bytes() != stages:
            write_text_atomic(local, stages.decode("utf-8"))
            changed = True
        return changed

    def _download_version(self, root: Path, name: str) -> None:
        source = f"{self._remote(root)}/{name}"
        staging = Path(tempfile.mkdtemp(prefix=".pulling-", dir=root))
        try:
            for path in self._fs.find(source):
                relative = str(path)[len(source) :].lstrip("/")
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self._fs.cat_file(path))
            verify_manifest(staging)
            staging.chmod(0o755)
            try:
                staging.rename(root / name)
            except OSError:
                if not (root / name).is_dir():
                    raise  # else another process of this machine pulled it first
        except OSError as exc:
            raise self._fail("download a version from", exc) from exc
        except IntegrityError as exc:
            raise IntegrityError(
                f"Version {name} of {root.name!r} in the shared registry {self.url} fails its "
                f"manifest ({exc}); it was not used. Register the model again."
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)


_MIRRORS: dict[Path, RegistryMirror] = {}
_MIRRORS_LOCK = threading.Lock()


def attach(local_dir: Path, url: str, *, interval_s: float = 10.0) -> RegistryMirror:
    """Mirror the registry folder `local_dir` to `url` in this process (idempotent).

    Raises:
        RegistryError: the URL's scheme has no fsspec back-end here.
    """
    key = Path(local_dir).resolve()
    with _MIRRORS_LOCK:
        current = _MIRRORS.get(key)
        if current is None or current.url != url:
            current = _MIRRORS[key] = RegistryMirror(key, url, interval_s)
        return current


def attach_configured(settings: Settings) -> RegistryMirror | None:
    """Mirror the settings' registry folder to `registry_url` when it is set.

    Raises:
        RegistryError: the URL's scheme has no fsspec back-end installed.
    """
    if not settings.registry_url:
        return None
    return attach(
        settings.resolved_registry_dir,
        settings.registry_url,
        interval_s=settings.registry_sync_seconds,
    )


def detach(local_dir: Path) -> None:
    """Stop mirroring `local_dir` in this process."""
    with _MIRRORS_LOCK:
        _MIRRORS.pop(Path(local_dir).resolve(), None)


def mirror_for(path: Path) -> RegistryMirror | None:
    """The mirror of the registry folder holding `path`, or None when it is not mirrored."""
    if not _MIRRORS:
        return None
    resolved = Path(path).resolve()
    for local_dir, mirror in _MIRRORS.items():
        if resolved == local_dir or local_dir in resolved.parents:
            return mirror
    return None


def pull_due(registry_dir: Path) -> None:
    """Pull `registry_dir` from its mirror when a pull is due; nothing when not mirrored.

    Raises:
        RegistryError: the shared location cannot be read.
    """
    mirror = mirror_for(registry_dir)
    if mirror is not None:
        mirror.pull_due()
