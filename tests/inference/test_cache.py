"""The model cache's one reload rule: a loaded version is kept; which version serves is read
again only when the model's stage record changes, so the next call after a promotion,
rollback, archive or registration uses the new version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clinsight.errors import IntegrityError, ModelNotFoundError
from clinsight.inference.cache import ModelCache, model_cache
from clinsight.registry.kinds import StageAction, change_stage
from clinsight.registry.versions import KindRegistry, ModelKind
from tests.support.image_models import register_tiny
from tests.support.ner_models import register_tiny as register_ner
from tests.support.ner_models import tiny_spacy


def _count_registry_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every `KindRegistry.get` call (how the cache reads stages)."""
    calls: list[str] = []
    original = KindRegistry.get

    def counted(self: KindRegistry[Any], registry_dir: Path, name: str, *a: Any, **k: Any) -> Any:
        calls.append(name)
        return original(self, registry_dir, name, *a, **k)

    monkeypatch.setattr(KindRegistry, "get", counted)
    return calls


def test_image_predictors_follow_promotion_and_rollback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_tiny(tmp_path, seed=0)
    register_tiny(tmp_path, seed=1)
    cache = ModelCache(tmp_path)
    with pytest.raises(ModelNotFoundError, match="'tiny' has no production version"):
        cache.image("tiny")
    change_stage(tmp_path, ModelKind.IMAGE, "tiny", StageAction.PROMOTE, 1)
    first = cache.image("tiny")
    assert first.model.version == 1
    reads = _count_registry_reads(monkeypatch)
    assert cache.image("tiny") is first
    assert reads == []  # the stage record did not change: no registry read
    change_stage(tmp_path, ModelKind.IMAGE, "tiny", StageAction.PROMOTE, 2)
    reads.clear()
    assert cache.image("tiny").model.version == 2
    assert reads == ["tiny", "tiny"]  # the production version, then v2's files verified
    change_stage(tmp_path, ModelKind.IMAGE, "tiny", StageAction.ROLLBACK)
    assert cache.image("tiny") is first  # v1 was loaded before: kept, not reloaded
    change_stage(tmp_path, ModelKind.IMAGE, "tiny", StageAction.ARCHIVE, 1)
    with pytest.raises(ModelNotFoundError, match="'tiny' has no production version"):
        cache.image("tiny")
    assert cache.image("tiny", 2).model.version == 2  # a named version needs no stage


def test_the_newest_version_follows_a_registration(tmp_path: Path) -> None:
    register_tiny(tmp_path, seed=0)
    cache = ModelCache(tmp_path)
    assert cache.load(ModelKind.IMAGE, "tiny", newest=True).version.version == 1
    register_tiny(tmp_path, seed=1)  # registration rewrites the stage record too
    assert cache.load(ModelKind.IMAGE, "tiny", newest=True).version.version == 2


def test_the_production_set_and_what_is_built_from_it(tmp_path: Path, data_dir: Path) -> None:
    cache = ModelCache(tmp_path)
    assert cache.production(ModelKind.NER) == ()
    register_ner(tmp_path, tiny_spacy(data_dir), data_dir, name="a")
    register_ner(tmp_path, tiny_spacy(data_dir), data_dir, name="b", promote=False)
    served = cache.production(ModelKind.NER)
    assert [(m.version.name, m.version.version) for m in served] == [("a", 1)]
    built = cache.built("names", served, lambda: object())
    assert cache.built("names", cache.production(ModelKind.NER), lambda: object()) is built
    change_stage(tmp_path, ModelKind.NER, "b", StageAction.PROMOTE, 1)
    served = cache.production(ModelKind.NER)
    assert [(m.version.name, m.version.version) for m in served] == [("a", 1), ("b", 1)]
    assert cache.built("names", served, lambda: object()) is not built


def test_a_version_is_verified_when_first_loaded(tmp_path: Path) -> None:
    version, _ = register_tiny(tmp_path)
    change_stage(tmp_path, ModelKind.IMAGE, "tiny", StageAction.PROMOTE, 1)
    onnx = version.path / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=r"model\.onnx has sha256"):
        ModelCache(tmp_path).image("tiny")


def test_one_cache_per_registry_folder(tmp_path: Path) -> None:
    assert model_cache(tmp_path) is model_cache(tmp_path / "." / "")
    assert model_cache(tmp_path) is not model_cache(tmp_path / "other")
