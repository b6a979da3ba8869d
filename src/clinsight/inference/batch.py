"""Batch inference over image files: one predictor class, run in one process or on Ray Data.

`BatchImagePredictor` is a callable class over column batches (``{"key": ..., "path": ...}``
as NumPy arrays): it reads each file, checks it against the model's intended use and
predicts every readable image of the batch in one ONNX Runtime run. The local backend calls
one instance in this process; the Ray backend hands the class to Ray Data's `map_batches`
with an actor pool, so each actor holds one ONNX Runtime session for the whole run. Both
yield the same rows (`RESULT_COLUMNS`), one per input: an unreadable input gets status
"error" and the reason in words, an image outside the intended use status "refused".
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

from clinsight.data.batch_inputs import BatchInput
from clinsight.data.images import read_image
from clinsight.data.source import SourceImage
from clinsight.errors import ClinsightError, ModelError
from clinsight.evaluation.ood import assess_intended_use
from clinsight.inference.predictors import ImagePredictor, Prediction

__all__ = [
    "NO_LUNG_CHECK",
    "RESULT_COLUMNS",
    "Backend",
    "Batch",
    "BatchImagePredictor",
    "BatchModel",
    "iter_local",
    "iter_ray",
]

Backend = Literal["local", "ray"]
Batch = dict[str, NDArray[Any]]

RESULT_COLUMNS = (
    "key", "status", "reason", "decision", "label", "label_probability",
    "positive_probability", "probabilities", "model_name", "model_version",
    "artifact_sha256", "input_sha256", "ood_score", "input_score", "format", "modality",
    "body_part", "warnings", "lung_share", "lung_mostly_outside", "lung_note",
)  # fmt: skip
"""One row per input; ``status`` is "ok", "refused" or "error". Floats are NaN where they
do not apply (an error, an indeterminate finding); ``probabilities`` is a JSON object;
``reason`` holds the error or the refusal's reasons, ``warnings`` the check's warnings
(each list joined with " | "). The ``lung_*`` columns are the explanation check of a chest
classifier against a production lung model, filled in by the service
(`services.batch_predict`): the Grad-CAM share inside the lungs (NaN: not checked or not
available), whether it lies mostly outside them, and the sentence a clinician reads."""

NO_LUNG_CHECK: dict[str, Any] = {"lung_share": math.nan, "lung_mostly_outside": False,
                                 "lung_note": ""}  # fmt: skip
"""The ``lung_*`` columns of a row without the check (they are absent from results written
before it existed)."""

_SEPARATOR = " | "
_FLOATS = ("label_probability", "positive_probability", "ood_score", "input_score", "lung_share")


@dataclass(frozen=True)
class BatchModel:
    """The exact registered version every worker loads (resolved once, before the run)."""

    registry_dir: Path
    name: str
    version: int
    warn_only: bool = False


class BatchImagePredictor:
    """Read, check and predict a batch of image files with one registered model.

    One ONNX Runtime session per instance (per Ray actor), with `threads` intra-op threads.
    """

    def __init__(self, model: BatchModel, threads: int = 1) -> None:
        """Load and verify the model version.

        Raises:
            ModelNotFoundError: no such version.
            IntegrityError: the version's files do not match their manifest.
            ModelError: the ONNX graph cannot be loaded.
        """
        self.warn_only = model.warn_only
        self.predictor = ImagePredictor.from_registry(
            model.registry_dir, model.name, model.version, threads=threads
        )

    def __call__(self, batch: Batch) -> Batch:
        """The result rows (`RESULT_COLUMNS`) of the batch's files, in the batch's order."""
        keys = [str(key) for key in batch["key"]]
        rows: list[dict[str, Any]] = []
        images: list[tuple[int, SourceImage]] = []
        for index, path in enumerate(batch["path"]):
            try:
                images.append((index, read_image(Path(str(path)))))
                rows.append({})
            except ClinsightError as exc:
                rows.append(_error_row(keys[index], str(exc)))
            except Exception as exc:  # a reader's unforeseen failure stays this file's error
                rows.append(
                    _error_row(keys[index], f"the file cannot be read ({type(exc).__name__})")
                )
        if images:
            for (index, image), prediction in zip(images, self._predict(images), strict=True):
                rows[index] = self._row(keys[index], image, prediction)
        return {column: np.asarray([row[column] for row in rows], dtype=_dtype(column))
                for column in RESULT_COLUMNS}  # fmt: skip

    def _predict(self, images: list[tuple[int, SourceImage]]) -> list[Prediction | str]:
        """Predictions of the batch in one run; on a failing batch, each image alone, so one
        bad image (e.g. non-finite pixels) costs only its own row."""
        try:
            return list(self.predictor.predict_many([image.pixels for _, image in images]))
        except ClinsightError:
            found: list[Prediction | str] = []
            for _, image in images:
                try:
                    found.append(self.predictor.predict(image.pixels))
                except ClinsightError as exc:
                    found.append(str(exc))
            return found

    def _row(self, key: str, image: SourceImage, prediction: Prediction | str) -> dict[str, Any]:
        if isinstance(prediction, str):
            return _error_row(key, prediction)
        source = dict(image.metadata)
        check = assess_intended_use(
            self.predictor.model.intended_use_gate, score=prediction.ood_score,
            pixels=image.pixels, source=source, input_score=prediction.input_score,
            warn_only=self.warn_only,
        )  # fmt: skip
        refused = check.refused
        label_probability = None if refused else prediction.label_probability
        return {
            "key": key,
            "status": "refused" if refused else "ok",
            "reason": _SEPARATOR.join(check.reasons) if refused else "",
            "decision": "" if refused else prediction.decision,
            "label": "" if refused else prediction.label,
            "label_probability": math.nan if label_probability is None else label_probability,
            "positive_probability": math.nan if refused else prediction.positive_probability,
            "probabilities": "{}" if refused else json.dumps(prediction.probabilities),
            "model_name": prediction.model_name,
            "model_version": prediction.model_version,
            "artifact_sha256": prediction.artifact_sha256,
            "input_sha256": prediction.input_sha256,
            "ood_score": _number(prediction.ood_score),
            "input_score": _number(prediction.input_score),
            "format": image.format,
            "modality": source.get("modality", ""),
            "body_part": source.get("body_part", ""),
            "warnings": "" if refused else _SEPARATOR.join(check.reasons),
            **NO_LUNG_CHECK,
        }


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _dtype(column: str) -> Any:
    if column == "model_version":
        return np.int64
    if column in _FLOATS:
        return np.float64
    if column == "lung_mostly_outside":
        return np.bool_
    return object


def _error_row(key: str, reason: str) -> dict[str, Any]:
    row: dict[str, Any] = {column: "" for column in RESULT_COLUMNS}
    row.update(key=key, status="error", reason=reason, model_version=0, **NO_LUNG_CHECK)
    for column in _FLOATS:
        row[column] = math.nan
    return row


def _columns(inputs: Sequence[BatchInput]) -> Batch:
    return {
        "key": np.asarray([item.key for item in inputs], dtype=object),
        "path": np.asarray([str(item.path) for item in inputs], dtype=object),
    }


def iter_local(
    inputs: Sequence[BatchInput], model: BatchModel, *, batch_size: int = 64, threads: int = 0
) -> Iterator[Batch]:
    """Result batches of `inputs`, predicted in this process by one predictor (`threads`
    ONNX Runtime threads; 0 uses every core).

    Raises:
        ModelNotFoundError, IntegrityError, ModelError: the model cannot be loaded.
    """
    predictor = BatchImagePredictor(model, threads=threads)
    for start in range(0, len(inputs), batch_size):
        yield predictor(_columns(inputs[start : start + batch_size]))


def iter_ray(
    inputs: Sequence[BatchInput], model: BatchModel, *, batch_size: int = 64, workers: int = 2
) -> Iterator[Batch]:
    """Result batches of `inputs` from Ray Data: `map_batches` over an actor pool of
    `workers` predictors (one CPU and one single-threaded session each), in the order they
    finish. Ray must be connected (`inference.cluster.ray_session`); the files and the
    registry must be readable from every worker node at the same paths.

    Raises:
        ModelError: a worker could not load the model or the run failed.
    """
    import ray.data
    from ray.data import ActorPoolStrategy
    from ray.exceptions import RayError

    if not inputs:
        return
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    blocks = max(workers, math.ceil(len(inputs) / batch_size))
    columns = _columns(inputs)
    dataset = ray.data.from_items(
        [{"key": k, "path": p} for k, p in zip(columns["key"], columns["path"], strict=True)],
        override_num_blocks=blocks,
    ).map_batches(
        BatchImagePredictor, fn_constructor_kwargs={"model": model, "threads": 1},
        batch_size=batch_size, batch_format="numpy", num_cpus=1,
        compute=ActorPoolStrategy(size=workers),
    )  # fmt: skip
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            yield cast(Batch, batch)
    except RayError as exc:
        raise ModelError(
            "The Ray batch run failed: a worker could not load the model or read the files. "
            "Check that the registry and the input folder are reachable from every Ray node "
            f"at the same path ({type(exc).__name__})."
        ) from exc
