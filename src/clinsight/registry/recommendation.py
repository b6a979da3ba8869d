"""Treatment recommenders in the registry: the fitted arrays as safetensors, with card.

Layout, beside the other kinds::

    <registry_dir>/_recommendation/<name>/stages.json
    <registry_dir>/_recommendation/<name>/<version>/
        model.safetensors   the training matrices (patients x treatments, x conditions,
                            per-condition episodes; no patient ids) and the model's arrays
        model.json          recommender and parameters, treatment and condition
                            vocabularies with names, drug classes, metrics, training
        card.json  card.md  manifest.json

Data only: nothing is unpickled; loading verifies the manifest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from clinsight.data.longitudinal import Code
from clinsight.errors import IntegrityError, RegistryError
from clinsight.recommend.matrix import TreatmentData
from clinsight.recommend.models import Recommender
from clinsight.registry.manifest import verify_manifest
from clinsight.registry.versions import (
    KindRegistry,
    ModelKind,
    RegisteredVersion,
    check_registration,
    publish_version,
    staging_folder,
)
from clinsight.sequence.treatment_sequence import make_treatment_recommender

__all__ = [
    "RECOMMENDATION_ROOT",
    "REGISTRY",
    "RecommendationModelVersion",
    "get_recommendation_model",
    "list_recommendation_models",
    "load_recommendation_model",
    "register_recommendation_model",
]

RECOMMENDATION_ROOT, ARRAYS_FILE = "_recommendation", "model.safetensors"
_SPARSE = (
    "user_items", "user_conditions", "episodes", "index_conditions", "index_new",
    "index_started",
)  # fmt: skip


@dataclass(frozen=True)
class RecommendationModelVersion(RegisteredVersion):
    """A registered recommender version (its arrays load lazily)."""

    recommender: str
    params: dict[str, float]
    min_support: int
    items: int
    conditions: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the CLI and the API)."""
        return {
            "name": self.name, "version": self.version, "stage": str(self.stage),
            "created": self.created, "recommender": self.recommender, "params": self.params,
            "min_support": self.min_support, "treatments": self.items,
            "conditions": self.conditions, "artifact_sha256": self.artifact_sha256,
            "metrics": self.metrics, "training": self.training,
        }  # fmt: skip


def _from_record(record: dict[str, Any], common: dict[str, Any]) -> RecommendationModelVersion:
    return RecommendationModelVersion(
        **common, recommender=str(record["recommender"]),
        params={k: float(v) for k, v in record["params"].items()},
        min_support=int(record["min_support"]), items=len(record["items"]),
        conditions=len(record["conditions"]),
    )  # fmt: skip


REGISTRY = KindRegistry(
    kind=ModelKind.RECOMMENDATION,
    noun="recommendation model",
    folder=RECOMMENDATION_ROOT,
    resource="recommendation_model",
    build=_from_record,
    unknown="No recommendation model named {name!r}; registered: {known}.",
)
list_recommendation_models = REGISTRY.versions
get_recommendation_model = REGISTRY.get


def _card(record: Mapping[str, Any], sha: str, limitations: Sequence[str]) -> dict[str, Any]:
    return {
        "model": {
            "name": record["name"], "version": record["version"], "created": record["created"],
            "architecture": f"{record['recommender']} treatment recommender "
                            f"(parameters {record['params']})",
            "artifact_sha256": sha,
        },
        "intended_use": record["intended_use"],
        "outputs": {
            "task": "ranked treatment (drug ingredient) suggestions for the active "
                    "conditions, each with its support and explanation, after the safety "
                    "filter (allergies, duplicate therapy, interactions)",
            "labels": [], "positive_label": "",
        },
        "preprocessing": {"features": [
            f"{len(record['items'])} treatments (RxNorm ingredients)",
            f"{len(record['conditions'])} conditions",
        ]},
        "training": record["training"],
        "metrics": record["metrics"],
        "calibration": {},
        "limitations": list(limitations),
        "plots": [],
    }  # fmt: skip


def _arrays(model: Recommender, data: TreatmentData) -> dict[str, NDArray[Any]]:
    arrays: dict[str, NDArray[Any]] = {
        "indication": data.indication, "condition_patients": data.condition_patients,
        "ages": data.ages, "sexes": data.sexes,
    }  # fmt: skip
    if data.index_ages is not None:
        arrays["index_ages"] = data.index_ages
    for name in _SPARSE:
        matrix = getattr(data, name)
        if matrix is None:
            continue
        csr = sp.csr_matrix(matrix)
        arrays[f"{name}.data"] = csr.data.astype(np.float64)
        arrays[f"{name}.indices"] = csr.indices.astype(np.int64)
        arrays[f"{name}.indptr"] = csr.indptr.astype(np.int64)
        arrays[f"{name}.shape"] = np.asarray(csr.shape, dtype=np.int64)
    for key, value in model.state().items():
        arrays[f"state.{key}"] = np.asarray(value)
    return {k: np.ascontiguousarray(v) for k, v in arrays.items()}


def register_recommendation_model(
    registry_dir: Path,
    *,
    name: str,
    model: Recommender,
    data: TreatmentData,
    min_support: int,
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
    intended_use: str,
    limitations: Sequence[str] = (),
) -> RecommendationModelVersion:
    """Store a fitted recommender and its training matrices as the next version of `name`.

    Raises:
        RegistryError: invalid name or missing training['data_sha256'].
    """
    from safetensors.numpy import save_file

    check_registration(name, training)
    root = REGISTRY.root(registry_dir, name)
    with staging_folder(root) as staging:
        save_file(_arrays(model, data), str(staging / ARRAYS_FILE))
        record: dict[str, Any] = {
            "format": 1, "kind": "recommendation", "name": name,
            "recommender": model.name, "params": dict(model.params),
            "min_support": min_support, "items": data.items, "conditions": data.conditions,
            "names": data.names,
            "classes": {k: [c.system, c.code, c.display] for k, c in data.classes.items()},
            "metrics": metrics, "training": training, "intended_use": intended_use,
            "artifact": ARRAYS_FILE,
        }  # fmt: skip
        version = publish_version(
            root, staging, record, ARRAYS_FILE, lambda r, sha: _card(r, sha, limitations)
        )
    return get_recommendation_model(registry_dir, name, version, verify=False)


def load_recommendation_model(
    version: RecommendationModelVersion,
) -> tuple[Recommender, TreatmentData]:
    """The fitted recommender and its training data, after checking every file.

    Raises:
        IntegrityError: a file changed since registration, or an array is missing.
    """
    from safetensors.numpy import load_file

    from clinsight.registry.manifest import read_json

    verify_manifest(version.path)
    record = read_json(version.path / "model.json")
    arrays = load_file(str(version.path / ARRAYS_FILE))
    try:
        sparse: dict[str, sp.csr_matrix | None] = {}
        for name in _SPARSE:
            if f"{name}.data" not in arrays:
                sparse[name] = None
                continue
            shape = tuple(int(n) for n in arrays[f"{name}.shape"])
            sparse[name] = sp.csr_matrix(
                (arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"]),
                shape=shape,
            )
        data = TreatmentData(
            items=list(record["items"]), conditions=list(record["conditions"]),
            names=dict(record["names"]), user_items=sparse["user_items"],
            user_conditions=sparse["user_conditions"], indication=arrays["indication"],
            condition_patients=arrays["condition_patients"], ages=arrays["ages"],
            sexes=arrays["sexes"], episodes=sparse["episodes"],
            classes={k: Code(*v) for k, v in record.get("classes", {}).items()},
            index_conditions=sparse["index_conditions"], index_new=sparse["index_new"],
            index_started=sparse["index_started"], index_ages=arrays.get("index_ages"),
        )  # fmt: skip
        state = {k[len("state.") :]: v for k, v in arrays.items() if k.startswith("state.")}
        model = make_treatment_recommender(version.recommender, **version.params).load_state(state)
    except KeyError as exc:
        raise IntegrityError(f"{version.path / ARRAYS_FILE} lacks {exc}.") from exc
    if data.indication.shape != (len(data.conditions), len(data.items)):
        raise RegistryError(f"{version.path / ARRAYS_FILE} does not match its vocabularies.")
    return model, data
