"""NER models in the registry: a trained spaCy or MiniLM NER with its record, card and sha256.

Layout, beside the image and risk models (``_ner`` cannot be an image model's name)::

    <registry_dir>/_ner/<name>/stages.json
    <registry_dir>/_ner/<name>/<version>/
        model/        the saved model: a spaCy pipeline (config.cfg, msgpack weights) or a
                      MiniLM tagger (config, tokenizer, model.safetensors, ner.json)
        model.json    backend, corpus, labels (corpus and pipeline), training, metrics
                      (devel and test strict entity F1 per label, with 95 % intervals)
        card.json  card.md  manifest.json (sha256 of every file; artifact = the weights)

Versions, the staging folder, locks, manifests and stages work as for every kind
(`registry.versions`). A version's files are checked against its
manifest before it is loaded or enters production. The note pipeline uses every version
in production (`production_ner_models`), one per name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinsight.nlp import NerBackend
from clinsight.nlp.trained_ner import (
    PIPELINE_LABELS,
    WEIGHTS_FILES,
    NerModel,
    TrainedNER,
    backend_of,
    entity_labels,
    load_trained_ner,
    save_trained_ner,
)
from clinsight.registry.manifest import verify_manifest
from clinsight.registry.stages import Stage
from clinsight.registry.versions import (
    KindRegistry,
    ModelKind,
    RegisteredVersion,
    check_registration,
    publish_version,
    staging_folder,
)

__all__ = [
    "NER_ROOT",
    "REGISTRY",
    "NerModelVersion",
    "get_ner_model",
    "list_ner_models",
    "load_ner_model",
    "production_ner_models",
    "register_ner_model",
]

NER_ROOT, MODEL_DIR = "_ner", "model"
LIMITATIONS = (
    "Trained on PubMed abstracts (titles and abstracts, not clinical notes); recall and "
    "precision on clinical notes are unknown until measured on annotated local notes.",
    "Entities are strict spans of the corpus's annotation guidelines; a mention the corpus "
    "does not annotate (e.g. symptoms in NCBI disease) is not found.",
    "Decision support only: entities, their assertion and codes must be reviewed by a clinician.",
)


@dataclass(frozen=True)
class NerModelVersion(RegisteredVersion):
    """A registered NER model version, as read from its folder (the model loads lazily)."""

    backend: NerBackend
    corpus: str
    labels: tuple[str, ...]

    @property
    def source(self) -> str:
        """How annotations name this version, e.g. ``ncbi_disease-minilm v2``."""
        return f"{self.name} v{self.version}"

    @property
    def model_dir(self) -> Path:
        """The folder of the saved model."""
        return self.path / MODEL_DIR

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the CLI and the API)."""
        return {
            "name": self.name, "version": self.version, "stage": str(self.stage),
            "backend": str(self.backend), "corpus": self.corpus, "labels": list(self.labels),
            "created": self.created, "artifact_sha256": self.artifact_sha256,
            "metrics": self.metrics, "training": self.training,
        }  # fmt: skip


def _from_record(record: dict[str, Any], common: dict[str, Any]) -> NerModelVersion:
    return NerModelVersion(
        **common, backend=NerBackend(record["backend"]), corpus=record["corpus"],
        labels=tuple(record["labels"]),
    )  # fmt: skip


REGISTRY = KindRegistry(
    kind=ModelKind.NER,
    noun="NER model",
    folder=NER_ROOT,
    resource="ner_model",
    build=_from_record,
    unknown=(
        "No NER model named {name!r}; registered: {known}. Train one with "
        "`clinsight nlp train-ner --corpus ncbi_disease`."
    ),
)
list_ner_models = REGISTRY.versions
get_ner_model = REGISTRY.get


def _ner_card(
    record: Mapping[str, Any], artifact_sha256: str, intended_use: str, limitations: Sequence[str]
) -> dict[str, Any]:
    """The card in the shape `render_card_markdown` renders (as the other kinds' cards)."""
    backends = {NerBackend.SPACY: "spaCy CNN NER", NerBackend.MINILM: "MiniLM-L6 token tagger"}
    return {
        "model": {
            "name": record["name"], "version": record["version"], "created": record["created"],
            "architecture": backends[NerBackend(record["backend"])],
            "artifact_sha256": artifact_sha256,
        },
        "intended_use": intended_use,
        "outputs": {
            "task": "named entities (BIO tags, strict spans)", "labels": record["labels"],
            "positive_label": "n/a",
        },
        "preprocessing": {
            "tokens": "spaCy English tokenizer; sentences from the clinical sentence splitter",
            "pipeline_labels": record["pipeline_labels"],
        },
        "training": record["training"],
        "metrics": record["metrics"],
        "calibration": {"method": "none (the most likely tag of each word)"},
        "limitations": list(dict.fromkeys([*LIMITATIONS, *limitations])),
        "plots": [],
    }  # fmt: skip


def register_ner_model(
    registry_dir: Path,
    *,
    name: str,
    model: NerModel,
    corpus: str,
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
    intended_use: str | None = None,
    limitations: Sequence[str] = (),
) -> NerModelVersion:
    """Store a trained NER model as the next version of `name` (stage candidate).

    Raises:
        RegistryError: invalid name, missing training['data_sha256'], or non-JSON
            metrics/training values.
    """
    check_registration(name, training)
    backend = backend_of(model)
    labels = entity_labels(model)
    artifact = f"{MODEL_DIR}/{WEIGHTS_FILES[backend]}"
    mapped = {label: PIPELINE_LABELS.get(label, label) for label in labels}
    use = intended_use or (
        "Decision support: find mentions in clinical notes for the note pipeline ("
        + ", ".join(f"{k} as {v}" for k, v in mapped.items())
        + "), reviewed by a clinician with the rest of the note's reading."
    )
    record = {
        "format": 1, "kind": "ner", "name": name, "backend": backend, "corpus": corpus,
        "labels": labels, "pipeline_labels": mapped, "metrics": metrics, "training": training,
    }  # fmt: skip
    root = REGISTRY.root(registry_dir, name)
    with staging_folder(root) as staging:
        save_trained_ner(model, staging / MODEL_DIR)
        number = publish_version(
            root, staging, record, artifact, lambda r, sha: _ner_card(r, sha, use, limitations)
        )
    return get_ner_model(registry_dir, name, number, verify=False)


def load_ner_model(version: NerModelVersion) -> TrainedNER:
    """The trained model of a version, after checking its files against the manifest.

    Raises:
        IntegrityError: a file is missing, added or changed since registration.
        ModelError: the saved model cannot be loaded.
    """
    verify_manifest(version.path)
    return load_trained_ner(version.model_dir, version.backend, version.source)


def production_ner_models(registry_dir: Path) -> list[NerModelVersion]:
    """The version in production of every NER model name (none: an empty list), by name.

    Raises:
        IntegrityError: a version's model.json, manifest or stages.json is malformed.
    """
    return [v for v in list_ner_models(registry_dir) if v.stage is Stage.PRODUCTION]
