"""The registry mirrored to a shared fsspec location: two replicas' folders, one remote."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from clinsight.config import Settings, get_settings
from clinsight.errors import IntegrityError, RegistryError
from clinsight.inference.cache import ModelCache
from clinsight.registry import mirror
from clinsight.registry.recommendation import REGISTRY, get_recommendation_model
from clinsight.registry.stages import Stage
from clinsight.registry.versions import ModelKind
from tests.support.cli import run_cli, wide_console
from tests.support.recommend import register_tiny

__all__ = ["wide_console"]  # the autouse fixture: a wide terminal


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """Two replicas' registry folders mirrored to one in-memory shared location."""
    url = f"memory://registry-{uuid.uuid4().hex}"
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        mirror.attach(folder, url, interval_s=0.0)
    yield first, second, url
    for folder in (first, second):
        mirror.detach(folder)
    fsspec.filesystem("memory").rm(url.removeprefix("memory://"), recursive=True)


def test_a_version_registered_on_one_replica_serves_on_the_other(
    replicas: tuple[Path, Path, str],
) -> None:
    first, second, _ = replicas
    register_tiny(first)
    cache = ModelCache(second)
    assert cache.serving_version(ModelKind.RECOMMENDATION, "tiny", None) == 1
    pulled = get_recommendation_model(second, "tiny")  # verified against its manifest
    assert pulled.artifact_sha256 == get_recommendation_model(first, "tiny").artifact_sha256


def test_a_promotion_reaches_the_other_replica_and_numbers_stay_distinct(
    replicas: tuple[Path, Path, str],
) -> None:
    first, second, _ = replicas
    register_tiny(first)
    mirror.mirror_for(second).pull()  # type: ignore[union-attr]
    REGISTRY.promote(second, "tiny", 1, Stage.PRODUCTION, note="ok", actor="admin")
    cache = ModelCache(first)
    assert cache.serving_version(ModelKind.RECOMMENDATION, "tiny", Stage.PRODUCTION) == 1
    register_tiny(second)  # pulls first: becomes version 2, never a second version 1
    assert [v.version for v in REGISTRY.versions(first, "tiny")] == [1]
    mirror.mirror_for(first).pull()  # type: ignore[union-attr]
    assert [v.version for v in REGISTRY.versions(first, "tiny")] == [1, 2]
    assert REGISTRY.get(first, "tiny", 1).stage is Stage.PRODUCTION


def test_a_version_that_fails_its_manifest_is_not_pulled(
    replicas: tuple[Path, Path, str],
) -> None:
    first, second, url = replicas
    register_tiny(first)
    fs = fsspec.filesystem("memory")
    base = url.removeprefix("memory://")
    arrays = next(p for p in fs.find(base) if p.endswith(".safetensors"))
    fs.pipe_file(arrays, b"tampered")
    with pytest.raises(IntegrityError, match="fails its manifest"):
        mirror.mirror_for(second).pull()  # type: ignore[union-attr]
    assert not REGISTRY.names(second)


def test_push_all_seeds_a_new_location(tmp_path: Path) -> None:
    local = tmp_path / "registry"
    register_tiny(local)  # before any mirror is configured
    shared = tmp_path / "shared"
    seeded = mirror.attach(local, shared.as_uri())
    try:
        assert seeded.push_all() > 0
        assert seeded.push_all() == 0  # nothing left to send
        other = tmp_path / "other"
        mirror.attach(other, shared.as_uri()).pull()
        assert [v.version for v in REGISTRY.versions(other, "tiny")] == [1]
    finally:
        mirror.detach(local)
        mirror.detach(tmp_path / "other")


def test_an_unreachable_location_changes_nothing(tmp_path: Path) -> None:
    local = tmp_path / "registry"
    register_tiny(local)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the shared folder should be")
    mirror.attach(local, blocked.as_uri())
    try:
        with pytest.raises(RegistryError, match="shared registry"):
            REGISTRY.promote(local, "tiny", 1, Stage.PRODUCTION, note="", actor="admin")
        assert REGISTRY.get(local, "tiny", 1).stage is Stage.CANDIDATE
    finally:
        mirror.detach(local)


def test_an_unknown_scheme_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, registry_url="nosuchscheme://bucket/registry")
    with pytest.raises(RegistryError, match="CLINSIGHT_REGISTRY_URL"):
        mirror.attach_configured(settings)
    assert mirror.attach_configured(Settings(home=tmp_path)) is None


def test_models_sync_pulls_and_pushes_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = run_cli("models", "sync")
    assert code == 2
    assert "CLINSIGHT_REGISTRY_URL" in output
    local = tmp_path / "home" / "registry"
    register_tiny(local)
    shared = tmp_path / "shared"
    monkeypatch.setenv("CLINSIGHT_REGISTRY_URL", shared.as_uri())
    get_settings.cache_clear()
    try:
        code, output = run_cli("models", "sync", "--push")
        assert code == 0, output
        assert "Pushed 6 file(s)" in output
        assert (REGISTRY.root(shared, "tiny") / "1" / "manifest.json").is_file()
        monkeypatch.setenv("CLINSIGHT_HOME", str(tmp_path / "second-replica"))
        get_settings.cache_clear()
        code, output = run_cli("models", "list", "--kind", "recommendation")
        assert code == 0, output
        assert "tiny" in output  # pulled from the shared registry into the empty home
    finally:
        mirror.detach(local)
        mirror.detach(tmp_path / "second-replica" / "registry")
