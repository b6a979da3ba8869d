"""One cache of loaded models for every kind, keyed by (kind, name, version), with one
reload rule.

A registered version never changes, so a loaded version is kept until the process ends
(its files are verified against the manifest when it is first loaded). What changes is
which version serves: the production version of a name (or, where asked, its newest),
and the set of production versions of a kind. That answer is kept with the fingerprint
of the model's stage record (stages.json, `KindRegistry.stamp`) and read again whenever
the fingerprint changes, so the next request after a registration, promotion, rollback
or archive uses the new version, with no restart and no registry listing per request.
Where the registry is mirrored to a shared location (`registry.mirror`), each answer first
pulls it when a pull is due, so another replica's changes arrive within the interval.

Each kind's loader imports its runtime only when a model of that kind is first loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from clinsight.errors import ModelNotFoundError
from clinsight.registry.kinds import kind_registry
from clinsight.registry.mirror import pull_due
from clinsight.registry.stages import Stage
from clinsight.registry.versions import ModelKind, RegisteredVersion

if TYPE_CHECKING:
    from clinsight.inference.predictors import ImagePredictor
    from clinsight.inference.progression import ProgressionPredictor
    from clinsight.inference.segmentation import SegmentationPredictor
    from clinsight.registry.risk import RiskModelVersion
    from clinsight.registry.survival import SurvivalModelVersion
    from clinsight.tabular.models import RiskModel
    from clinsight.tabular.survival import SurvivalModel

__all__ = ["LoadedModel", "ModelCache", "RiskPredictor", "SurvivalPredictor", "model_cache"]

T = TypeVar("T")
Stamp = tuple[int, int] | None


@dataclass(frozen=True)
class LoadedModel:
    """A registered version and its loaded runtime (what the kind's loader built)."""

    version: RegisteredVersion
    model: Any


@dataclass(frozen=True)
class RiskPredictor:
    """A registered risk model version and its fitted estimator, loaded and checked once."""

    version: RiskModelVersion
    model: RiskModel


@dataclass(frozen=True)
class SurvivalPredictor:
    """A registered survival model version and its fitted estimator, loaded and checked once."""

    version: SurvivalModelVersion
    model: SurvivalModel


def _load_image(version: RegisteredVersion, threads: int) -> Any:
    from clinsight.inference.predictors import ImagePredictor
    from clinsight.registry.image import ModelVersion

    return ImagePredictor(cast(ModelVersion, version), threads=threads)


def _load_risk(version: RegisteredVersion, threads: int) -> Any:
    from clinsight.registry.risk import RiskModelVersion, load_risk_model

    del threads
    risk = cast(RiskModelVersion, version)
    return RiskPredictor(risk, load_risk_model(risk))


def _load_ner(version: RegisteredVersion, threads: int) -> Any:
    from clinsight.registry.ner import NerModelVersion, load_ner_model

    del threads
    return load_ner_model(cast(NerModelVersion, version))


def _load_survival(version: RegisteredVersion, threads: int) -> Any:
    from clinsight.registry.survival import SurvivalModelVersion, load_survival_model

    del threads
    survival = cast(SurvivalModelVersion, version)
    return SurvivalPredictor(survival, load_survival_model(survival))


def _load_progression(version: RegisteredVersion, threads: int) -> Any:
    from clinsight.inference.progression import ProgressionPredictor
    from clinsight.registry.progression import ProgressionModelVersion

    return ProgressionPredictor(cast(ProgressionModelVersion, version), threads=threads)


def _load_recommendation(version: RegisteredVersion, threads: int) -> Any:
    from clinsight.registry.recommendation import (
        RecommendationModelVersion,
        load_recommendation_model,
    )

    del threads
    return load_recommendation_model(cast(RecommendationModelVersion, version))


def _load_segmentation(version: RegisteredVersion, threads: int) -> Any:
    from clinsight.inference.segmentation import SegmentationPredictor
    from clinsight.registry.segmentation import SegmentationModelVersion

    return SegmentationPredictor(cast(SegmentationModelVersion, version), threads=threads)


LOADERS: dict[ModelKind, Callable[[RegisteredVersion, int], Any]] = {
    ModelKind.IMAGE: _load_image,
    ModelKind.RISK: _load_risk,
    ModelKind.NER: _load_ner,
    ModelKind.SURVIVAL: _load_survival,
    ModelKind.PROGRESSION: _load_progression,
    ModelKind.RECOMMENDATION: _load_recommendation,
    ModelKind.SEGMENTATION: _load_segmentation,
}
"""How each kind's version becomes a runtime (after verification): one entry per kind."""


class ModelCache:
    """Loaded models of one registry folder, shared by the API, the web and the services."""

    def __init__(self, registry_dir: Path, *, threads: int = 1) -> None:
        self.registry_dir = Path(registry_dir)
        self.threads = threads
        self._loaded: dict[tuple[ModelKind, str, int], LoadedModel] = {}
        self._serving: dict[tuple[ModelKind, str, Stage | None], tuple[Stamp, int]] = {}
        self._sets: dict[ModelKind, tuple[Hashable, tuple[tuple[str, int], ...]]] = {}
        self._built: dict[str, tuple[Hashable, Any]] = {}
        self._lock = threading.RLock()

    def serving_version(self, kind: ModelKind, name: str, stage: Stage | None) -> int:
        """The newest version of `name` at `stage` (any stage: None), re-read from the
        registry only when the model's stage record changed since last asked.

        Raises:
            ModelNotFoundError: no such model, or none at that stage.
        """
        pull_due(self.registry_dir)
        registry = kind_registry(kind)
        stamp = registry.stamp(self.registry_dir, name)
        key = (kind, name, stage)
        with self._lock:
            cached = self._serving.get(key)
            if stamp is not None and cached is not None and cached[0] == stamp:
                return cached[1]
            found = registry.get(self.registry_dir, name, stage=stage, verify=False).version
            self._serving[key] = (stamp, found)
            return found

    def load(
        self, kind: ModelKind, name: str, version: int | None = None, *, newest: bool = False
    ) -> LoadedModel:
        """Version `version` of `name`, else its production version (with `newest` and none
        in production, its newest), loaded once and verified when first loaded.

        Raises:
            ModelNotFoundError: no such model, version or production version.
            IntegrityError: the version's files changed since registration.
            ModelError: the runtime cannot be loaded.
        """
        if version is None:
            try:
                version = self.serving_version(kind, name, Stage.PRODUCTION)
            except ModelNotFoundError:
                if not newest:
                    raise
                version = self.serving_version(kind, name, None)
        key = (kind, name, version)
        with self._lock:
            if key not in self._loaded:
                entry = kind_registry(kind).get(self.registry_dir, name, version, verify=True)
                self._loaded[key] = LoadedModel(entry, LOADERS[kind](entry, self.threads))
            return self._loaded[key]

    def production(self, kind: ModelKind) -> tuple[LoadedModel, ...]:
        """Every production version of `kind` (one per name, by name), loaded; the set is
        re-read only when any stage record of the kind changed.

        Raises:
            IntegrityError: a production version's files changed since registration.
            ModelError: a production version cannot be loaded.
        """
        pull_due(self.registry_dir)
        registry = kind_registry(kind)
        stamps = registry.stamps(self.registry_dir)
        with self._lock:
            cached = self._sets.get(kind)
            if cached is None or cached[0] != stamps or any(s is None for _, s in stamps):
                serving = tuple(
                    (v.name, v.version)
                    for v in registry.versions(self.registry_dir)
                    if v.stage is Stage.PRODUCTION
                )
                cached = self._sets[kind] = (stamps, serving)
            return tuple(self.load(kind, name, version) for name, version in cached[1])

    def built(self, purpose: str, models: tuple[LoadedModel, ...], build: Callable[[], T]) -> T:
        """What `build` makes from `models` (e.g. the note pipeline from the NER models in
        production), kept for `purpose` while those models are the same versions."""
        key = tuple((m.version.kind, m.version.name, m.version.version) for m in models)
        with self._lock:
            cached = self._built.get(purpose)
            if cached is None or cached[0] != key:
                cached = self._built[purpose] = (key, build())
            return cast(T, cached[1])

    def image(self, name: str, version: int | None = None) -> ImagePredictor:
        """The predictor of image model `name` (`version`, else production; see `load`)."""
        predictor: ImagePredictor = self.load(ModelKind.IMAGE, name, version).model
        return predictor

    def risk(self, name: str, version: int | None = None, *, newest: bool = False) -> RiskPredictor:
        """The predictor of risk model `name` (`version`, else production; see `load`)."""
        predictor: RiskPredictor = self.load(ModelKind.RISK, name, version, newest=newest).model
        return predictor

    def survival(
        self, name: str, version: int | None = None, *, newest: bool = False
    ) -> SurvivalPredictor:
        """The predictor of survival model `name` (`version`, else production; see `load`)."""
        loaded = self.load(ModelKind.SURVIVAL, name, version, newest=newest)
        predictor: SurvivalPredictor = loaded.model
        return predictor

    def segmentation(self, name: str, version: int | None = None) -> SegmentationPredictor:
        """The predictor of segmentation model `name` (`version`, else production)."""
        predictor: SegmentationPredictor = self.load(ModelKind.SEGMENTATION, name, version).model
        return predictor

    def progression(
        self, name: str, version: int | None = None, *, newest: bool = False
    ) -> ProgressionPredictor:
        """The predictor of progression model `name` (`version`, else production; see
        `load`)."""
        loaded = self.load(ModelKind.PROGRESSION, name, version, newest=newest)
        predictor: ProgressionPredictor = loaded.model
        return predictor


_CACHES: dict[tuple[Path, int], ModelCache] = {}
_CACHES_LOCK = threading.Lock()


def model_cache(registry_dir: Path, *, threads: int = 1) -> ModelCache:
    """The process's cache of `registry_dir` (one per folder and thread count)."""
    key = (Path(registry_dir).resolve(), threads)
    with _CACHES_LOCK:
        if key not in _CACHES:
            _CACHES[key] = ModelCache(key[0], threads=threads)
        return _CACHES[key]
