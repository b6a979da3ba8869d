"""NER models in the registry: a trained spaCy or MiniLM NER with its record, card and sha256.

Layout, beside the image and risk models (``_ner`` cannot be an image model's name)::

    <registry_dir>/_ner/<name>/stages.json
    <registry_dir>/_ner/<name>/<version>/
        model/        the saved model: a spaCy pipeline (config.cfg, msgpack weights) or a
                      MiniLM tagger (config, tokenizer, model.safetensors, ner.json)
        model.json    backend, corpus, labels (corpus and pipeline), training, metrics
                      (devel and test strict entity F1 per label, with 95 % intervals)
        card.json  card.md  manifest.json (sha256 of every file; artifact = the weights)

Versions, the staging folder, locks, manifests and stages work as for the other kinds
(`registry.manifest`, `registry.stages`). A version's files are checked against its
manifest before it is loaded or enters production. The note pipeline uses every version
in production (`production_ner_models`), one per name.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinsight.errors import IntegrityError, ModelNotFoundError, RegistryError
from clinsight.nlp.trained_ner import (
    PIPELINE_LABELS,
    WEIGHTS_FILES,
    NerBackend,
    NerModel,
    TrainedNER,
    backend_of,
    entity_labels,
    load_trained_ner,
    save_trained_ner,
)
from clinsight.registry.cards import render_card_markdown
from clinsight.registry.manifest import (
    MANIFEST_FILE,
    json_ready,
    locked,
    read_json,
    sha256_file,
    verify_manifest,
    write_json,
    write_manifest,
)
from clinsight.registry.stages import (
    STAGES_FILE,
    Stage,
    StageChange,
    change_stage,
    previous_production,
    read_stages,
    record_stage,
    stage_history,
    utc_now,
    write_stages,
)
from clinsight.registry.store import NAME_PATTERN, SHA256_PATTERN, version_numbers

__all__ = [
    "NER_ROOT",
    "NerModelVersion",
    "get_ner_model",
    "list_ner_models",
    "load_ner_model",
    "ner_history",
    "production_ner_models",
    "production_stamp",
    "promote_ner_model",
    "register_ner_model",
    "rollback_ner_model",
]

NER_ROOT, MODEL_DIR, RECORD_FILE = "_ner", "model", "model.json"
LIMITATIONS = (
    "Trained on PubMed abstracts (titles and abstracts, not clinical notes); recall and "
    "precision on clinical notes are unknown until measured on annotated local notes.",
    "Entities are strict spans of the corpus's annotation guidelines; a mention the corpus "
    "does not annotate (e.g. symptoms in NCBI disease) is not found.",
    "Decision support only: entities, their assertion and codes must be reviewed by a clinician.",
)


@dataclass(frozen=True)
class NerModelVersion:
    """A registered NER model version, as read from its folder (the model loads lazily)."""

    name: str
    version: int
    path: Path
    stage: Stage
    backend: NerBackend
    corpus: str
    labels: tuple[str, ...]
    metrics: dict[str, Any]
    training: dict[str, Any]
    created: str
    artifact_sha256: str

    @property
    def source(self) -> str:
        """How annotations name this version, e.g. ``ncbi_disease-minilm v2``."""
        return f"{self.name} v{self.version}"

    @property
    def model_dir(self) -> Path:
        """The folder of the saved model."""
        return self.path / MODEL_DIR

    @property
    def card_path(self) -> Path:
        """The Markdown model card."""
        return self.path / "card.md"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the CLI and the API)."""
        return {
            "name": self.name, "version": self.version, "stage": str(self.stage),
            "backend": str(self.backend), "corpus": self.corpus, "labels": list(self.labels),
            "created": self.created, "artifact_sha256": self.artifact_sha256,
            "metrics": self.metrics, "training": self.training,
        }  # fmt: skip


def _root(registry_dir: Path, name: str | None = None) -> Path:
    base = Path(registry_dir) / NER_ROOT
    return base if name is None else base / name


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
        "limitations": [*LIMITATIONS, *limitations],
        "plots": [],
    }  # fmt: skip


def _check(name: str, training: Mapping[str, Any]) -> None:
    if not NAME_PATTERN.match(name):
        raise RegistryError(
            f"{name!r} cannot name an NER model: use 1-64 lowercase letters, digits, '.', '_' "
            "or '-', beginning with a letter or digit."
        )
    if not SHA256_PATTERN.match(str(training.get("data_sha256", ""))):
        raise RegistryError(
            "An NER model needs training['data_sha256'], the sha256 hex digest of the "
            "sentences it was trained on."
        )


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
    _check(name, training)
    backend = backend_of(model)
    labels = entity_labels(model)
    root = _root(registry_dir, name)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    artifact = f"{MODEL_DIR}/{WEIGHTS_FILES[backend]}"
    mapped = {label: PIPELINE_LABELS.get(label, label) for label in labels}
    use = intended_use or (
        "Decision support: find mentions in clinical notes for the note pipeline ("
        + ", ".join(f"{k} as {v}" for k, v in mapped.items())
        + "), reviewed by a clinician with the rest of the note's reading."
    )
    try:
        staging.chmod(0o755)
        save_trained_ner(model, staging / MODEL_DIR)
        with locked(root):
            number = max(version_numbers(root), default=0) + 1
            record = json_ready({
                "format": 1, "kind": "ner", "name": name, "version": number, "created": utc_now(),
                "backend": backend, "corpus": corpus, "labels": labels,
                "pipeline_labels": mapped,
                "metrics": metrics, "training": training,
            })  # fmt: skip
            write_json(staging / RECORD_FILE, record)
            card = _ner_card(record, sha256_file(staging / artifact), use, limitations)
            write_json(staging / "card.json", card)
            (staging / "card.md").write_text(render_card_markdown(card), encoding="utf-8")
            write_manifest(staging, artifact)
            staging.rename(root / str(number))
            stages = read_stages(root)
            record_stage(stages, number, Stage.CANDIDATE, "registered")
            write_stages(root, stages)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return get_ner_model(registry_dir, name, number, verify=False)


def _read_version(folder: Path, stage: Stage) -> NerModelVersion:
    record = read_json(folder / RECORD_FILE)
    try:
        return NerModelVersion(
            name=record["name"], version=int(folder.name), path=folder, stage=stage,
            backend=NerBackend(record["backend"]), corpus=record["corpus"],
            labels=tuple(record["labels"]), metrics=record["metrics"],
            training=record["training"], created=record["created"],
            artifact_sha256=read_json(folder / MANIFEST_FILE)["artifact_sha256"],
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"{folder / RECORD_FILE} is malformed ({exc!r}).") from exc


def _names(registry_dir: Path) -> list[str]:
    base = _root(registry_dir)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and version_numbers(p))


def list_ner_models(registry_dir: Path, name: str | None = None) -> list[NerModelVersion]:
    """Every registered NER model version (of `name`, if given), by name then version.

    Raises:
        ModelNotFoundError: `name` is given but not registered.
        IntegrityError: a version's model.json, manifest or stages.json is malformed.
    """
    names = _names(registry_dir)
    if name is not None and name not in names:
        raise ModelNotFoundError(
            f"No NER model named {name!r}; registered: {', '.join(names) or 'none'}. Train one "
            "with `clinsight nlp train-ner --corpus ncbi_disease`."
        )
    found = []
    for model_name in [name] if name is not None else names:
        root = _root(registry_dir, model_name)
        stages = read_stages(root)["versions"]
        found += [
            _read_version(root / str(n), Stage(stages.get(str(n), Stage.CANDIDATE)))
            for n in version_numbers(root)
        ]
    return found


def get_ner_model(
    registry_dir: Path,
    name: str,
    version: int | None = None,
    stage: Stage | str | None = None,
    *,
    verify: bool = True,
) -> NerModelVersion:
    """Version `version` of NER model `name`, or its newest version at `stage`, or its newest
    version; with `verify`, its files are checked against the manifest.

    Raises:
        ModelNotFoundError: no such name, version, or version at that stage.
        IntegrityError: a file is missing, added or changed since registration.
    """
    versions = list_ner_models(registry_dir, name)
    wanted = None if stage is None else Stage(stage)
    chosen = [v for v in versions if version in (None, v.version) and wanted in (None, v.stage)]
    if not chosen:
        have = ", ".join(f"v{v.version} ({v.stage})" for v in versions)
        asked = f"version {version}" if version is not None else f"{wanted} version"
        raise ModelNotFoundError(f"NER model {name!r} has no {asked}; it has {have}.")
    if verify:
        verify_manifest(chosen[-1].path)
    return chosen[-1]


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


def production_stamp(registry_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """A cheap fingerprint of the NER models' stages: (name, inode, mtime) of each
    stages.json. It changes whenever a version is registered, promoted or rolled back
    (stages.json is replaced atomically, so a change gives a new inode)."""
    stamps = []
    for name in _names(registry_dir):
        try:
            info = (_root(registry_dir, name) / STAGES_FILE).stat()
        except OSError:
            continue
        stamps.append((name, info.st_ino, info.st_mtime_ns))
    return tuple(stamps)


def promote_ner_model(
    registry_dir: Path, name: str, version: int, stage: Stage | str, *, note: str = ""
) -> NerModelVersion:
    """Put version `version` of NER model `name` at `stage` (the note pipeline then uses the
    production one; the version in production before is archived).

    Raises:
        ModelNotFoundError: no such name or version.
        IntegrityError: the version fails verification on its way to production.
    """
    target = Stage(stage)
    get_ner_model(registry_dir, name, version, verify=target is Stage.PRODUCTION)
    change_stage(_root(registry_dir, name), version, target, note)
    return get_ner_model(registry_dir, name, version, verify=False)


def ner_history(registry_dir: Path, name: str) -> list[StageChange]:
    """The stage changes of NER model `name`, oldest first.

    Raises:
        ModelNotFoundError: `name` is not registered.
    """
    list_ner_models(registry_dir, name)
    return stage_history(read_stages(_root(registry_dir, name)))


def rollback_ner_model(registry_dir: Path, name: str) -> NerModelVersion:
    """Put the previous production version of `name` back into production.

    Raises:
        ModelNotFoundError: no such model or no earlier production version.
        IntegrityError: the version to restore fails verification.
    """
    list_ner_models(registry_dir, name)
    version = previous_production(_root(registry_dir, name))
    if version is None:
        raise ModelNotFoundError(
            f"NER model {name!r} has no earlier production version; promote one instead."
        )
    return promote_ner_model(registry_dir, name, version, Stage.PRODUCTION, note="rollback")
