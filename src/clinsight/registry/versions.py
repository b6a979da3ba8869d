"""What every kind of registered model shares: the kind vocabulary (`ModelKind`), version
numbers, publishing a version, reading, choosing and verifying versions, and the stage
changes (promote, archive, rollback, history).

Each kind has one module named for it (`registry.image`, `registry.risk`, `registry.ner`)
that defines its `KindRegistry` as ``REGISTRY``: the folder its models live in below the
registry folder, how a version is built from its record, and the words of its "not
registered" error. Its methods are the kind's public functions (``get_risk_model =
REGISTRY.get``); `registry.kinds` reaches any kind by its `ModelKind`. A new kind is one
module and one `ModelKind` member. Each model folder holds::

    <name>/stages.json      stages and their history (`registry.stages`)
    <name>/<version>/       1, 2, ...: model.json (the record), the kind's files, manifest.json

A version is written in a staging folder (`staging_folder`) and renamed into place under
the model's lock (`publish_version`), so readers never see half a version and concurrent
registrations get distinct numbers.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from clinsight.errors import IntegrityError, ModelNotFoundError, RegistryError
from clinsight.files import sha256_file
from clinsight.registry.cards import render_card_markdown
from clinsight.registry.manifest import (
    MANIFEST_FILE,
    json_ready,
    locked,
    read_json,
    verify_manifest,
    write_json,
    write_manifest,
)
from clinsight.registry.mirror import mirror_for
from clinsight.registry.stages import (
    Stage,
    StageChange,
    change_stage,
    previous_production,
    read_stages,
    record_stage,
    stage_history,
    stages_stamp,
    utc_now,
    write_stages,
)

__all__ = [
    "NAME_PATTERN",
    "RECORD_FILE",
    "SHA256_PATTERN",
    "KindRegistry",
    "ModelKind",
    "RegisteredVersion",
    "check_registration",
    "publish_version",
    "staging_folder",
    "version_numbers",
]

RECORD_FILE = "model.json"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class ModelKind(StrEnum):
    """The kinds of registered model; each value names its module in `clinsight.registry`."""

    IMAGE = "image"
    RISK = "risk"
    NER = "ner"
    SURVIVAL = "survival"
    PROGRESSION = "progression"
    RECOMMENDATION = "recommendation"
    SEGMENTATION = "segmentation"


@dataclass(frozen=True)
class RegisteredVersion:
    """The fields every kind's version carries, as read from its folder."""

    kind: ModelKind
    name: str
    version: int
    path: Path
    stage: Stage
    metrics: dict[str, Any]
    training: dict[str, Any]
    created: str
    artifact_sha256: str

    @property
    def card_path(self) -> Path:
        """The Markdown model card."""
        return self.path / "card.md"


V = TypeVar("V", bound=RegisteredVersion)
VersionBuilder = Callable[[dict[str, Any], dict[str, Any]], V]
"""Builds a kind's version from its record and the `RegisteredVersion` fields (keywords)."""
CardBuilder = Callable[[dict[str, Any], str], dict[str, Any]]
"""Builds the card from the stored record and the artifact's sha256."""


def version_numbers(root: Path) -> list[int]:
    """The version numbers present under a model's folder, ascending."""
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def check_registration(name: str, training: Mapping[str, Any]) -> None:
    """Check what every registration needs: a valid name and the training data's sha256.

    Raises:
        RegistryError: invalid name or missing training['data_sha256'].
    """
    if not NAME_PATTERN.match(name):
        raise RegistryError(
            f"Invalid model name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit."
        )
    if not SHA256_PATTERN.match(str(training.get("data_sha256", ""))):
        raise RegistryError(
            "training['data_sha256'] must be the sha256 hex digest of the training data; "
            "every registered model carries it."
        )


@contextmanager
def staging_folder(root: Path) -> Iterator[Path]:
    """A fresh staging folder in the model folder `root` (created if need be), removed on
    exit unless `publish_version` renamed it into place."""
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        staging.chmod(0o755)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_version(
    root: Path, staging: Path, record: Mapping[str, Any], artifact: str, card: CardBuilder
) -> int:
    """Under the model's lock, number the version, write its record (with version and
    created), card and manifest into `staging`, rename it into place as a candidate and
    return its number. `artifact` is the file (in `staging`) that identifies the model.
    Where the registry is mirrored (`registry.mirror`), the model is pulled first and the
    version uploaded before the rename.

    Raises:
        RegistryError: non-JSON values in `record`, the lock is held for over a minute, or
            the shared registry cannot be written.
    """
    mirror = mirror_for(root)
    with locked(root):
        if mirror is not None:
            mirror.pull_model(root)
        version = max(version_numbers(root), default=0) + 1
        stored = json_ready({**record, "version": version, "created": utc_now()})
        write_json(staging / RECORD_FILE, stored)
        card_data = card(stored, sha256_file(staging / artifact))
        write_json(staging / "card.json", card_data)
        (staging / "card.md").write_text(render_card_markdown(card_data), encoding="utf-8")
        write_manifest(staging, artifact)
        if mirror is not None:
            mirror.put_version(root, staging, version)
        staging.rename(root / str(version))
        state = read_stages(root)
        record_stage(state, version, Stage.CANDIDATE, "registered")
        write_stages(root, state)
    return version


def _read_version(kind: ModelKind, folder: Path, stage: Stage, build: VersionBuilder[V]) -> V:
    record = read_json(folder / RECORD_FILE)
    manifest = read_json(folder / MANIFEST_FILE)
    try:
        common = {
            "kind": kind, "name": record["name"], "version": int(folder.name), "path": folder,
            "stage": stage,
            "metrics": record["metrics"], "training": record["training"],
            "created": record["created"], "artifact_sha256": manifest["artifact_sha256"],
        }  # fmt: skip
        return build(record, common)
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"{folder / RECORD_FILE} is malformed ({exc!r}).") from exc


@dataclass(frozen=True)
class KindRegistry(Generic[V]):
    """The registry of one kind of model: `folder` below the registry folder ("" for image
    models), `noun` for messages ("risk model"), `resource` for audit entries, `build` to
    read a version, and `unknown`, the message for a name not registered (formatted with
    name, known and base)."""

    kind: ModelKind
    noun: str
    resource: str
    folder: str
    build: VersionBuilder[V]
    unknown: str

    def base(self, registry_dir: Path) -> Path:
        """The folder holding this kind's model folders."""
        return Path(registry_dir) / self.folder

    def root(self, registry_dir: Path, name: str) -> Path:
        """The folder of model `name`."""
        return self.base(registry_dir) / name

    def names(self, registry_dir: Path) -> list[str]:
        """The registered names (folders with at least one version), sorted."""
        base = self.base(registry_dir)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and version_numbers(p))

    def in_production(self, registry_dir: Path) -> list[str]:
        """The names with a version in production, from each model's stages.json alone (no
        version record is read: cheap enough for a page view)."""
        return [
            name
            for name in self.names(registry_dir)
            if Stage.PRODUCTION.value
            in read_stages(self.root(registry_dir, name))["versions"].values()
        ]

    def versions(self, registry_dir: Path, name: str | None = None) -> list[V]:
        """Every version (of `name`, if given), by name then version.

        Raises:
            ModelNotFoundError: `name` is given but not registered.
            IntegrityError: a version's model.json, manifest or stages.json is malformed.
        """
        names = self.names(registry_dir)
        if name is not None:
            if name not in names:
                known = ", ".join(names) or "none"
                base = self.base(registry_dir)
                raise ModelNotFoundError(self.unknown.format(name=name, known=known, base=base))
            names = [name]
        found: list[V] = []
        for model_name in names:
            root = self.root(registry_dir, model_name)
            stages = read_stages(root)["versions"]
            for number in version_numbers(root):
                stage = Stage(stages.get(str(number), Stage.CANDIDATE))
                found.append(_read_version(self.kind, root / str(number), stage, self.build))
        return found

    def get(
        self,
        registry_dir: Path,
        name: str,
        version: int | None = None,
        stage: Stage | str | None = None,
        *,
        verify: bool = True,
    ) -> V:
        """One version of `name`: by number, else the newest at `stage`, else the newest.

        Serving code should ask for ``stage=Stage.PRODUCTION``. With `verify` (the default)
        every file is checked against the manifest.

        Raises:
            ModelNotFoundError: no such name, version, or version at that stage.
            IntegrityError: a file is missing, added or changed since registration.
        """
        versions = self.versions(registry_dir, name)
        wanted = Stage(stage) if stage is not None else None
        matches = [
            v
            for v in versions
            if (version is None or v.version == version) and (wanted is None or v.stage == wanted)
        ]
        if not matches:
            listing = ", ".join(f"v{v.version} ({v.stage})" for v in versions)
            what = f"version {version}" if version is not None else ""
            if wanted is not None:
                what = f"{what} at stage {wanted}" if what else f"{wanted} version"
            raise ModelNotFoundError(f"{self._title} {name!r} has no {what}; it has: {listing}.")
        if verify:
            verify_manifest(matches[-1].path)
        return matches[-1]

    def stamps(self, registry_dir: Path) -> tuple[tuple[str, tuple[int, int] | None], ...]:
        """The stage-record fingerprint of every registered name, by name: it changes when
        any version of this kind is registered or changes stage."""
        return tuple((name, self.stamp(registry_dir, name)) for name in self.names(registry_dir))

    def stamp(self, registry_dir: Path, name: str) -> tuple[int, int] | None:
        """The fingerprint of `name`'s stage record (`stages_stamp`); None when it has none."""
        if not NAME_PATTERN.match(name):
            return None
        return stages_stamp(self.root(registry_dir, name))

    def promote(
        self,
        registry_dir: Path,
        name: str,
        version: int,
        stage: Stage | str,
        *,
        note: str = "",
        actor: str = "",
    ) -> V:
        """Move a version to `stage` on behalf of `actor` (verified first when it enters
        production, where it archives the version in production before) and return it.

        Raises:
            ModelNotFoundError: no such name or version.
            IntegrityError: the version fails verification on its way to production.
        """
        target = Stage(stage)
        self.get(registry_dir, name, version, verify=target is Stage.PRODUCTION)
        change_stage(self.root(registry_dir, name), version, target, note, actor)
        return self.get(registry_dir, name, version, verify=False)

    def history(self, registry_dir: Path, name: str) -> list[StageChange]:
        """The stage changes of `name`, oldest first.

        Raises:
            ModelNotFoundError: `name` is not registered.
        """
        self.versions(registry_dir, name)
        return stage_history(read_stages(self.root(registry_dir, name)))

    def rollback_target(self, registry_dir: Path, name: str, version: int | None = None) -> int:
        """The version a rollback of `name` restores: `version`, else the one in production
        before the current.

        Raises:
            ModelNotFoundError: `name` is not registered, or no earlier production version.
        """
        if version is not None:
            return version
        self.versions(registry_dir, name)
        earlier = previous_production(self.root(registry_dir, name))
        if earlier is None:
            raise ModelNotFoundError(
                f"{self._title} {name!r} has no earlier production version to roll back "
                f"to; promote a version explicitly instead."
            )
        return earlier

    def rollback(
        self,
        registry_dir: Path,
        name: str,
        version: int | None = None,
        *,
        note: str = "rollback",
        actor: str = "",
    ) -> V:
        """Put `version` (default: the one in production before the current) back into
        production on behalf of `actor`.

        Raises:
            ModelNotFoundError: no such version, or no earlier production version exists.
            IntegrityError: the version to restore fails verification.
        """
        target = self.rollback_target(registry_dir, name, version)
        return self.promote(registry_dir, name, target, Stage.PRODUCTION, note=note, actor=actor)

    @property
    def _title(self) -> str:
        return self.noun[0].upper() + self.noun[1:]
