"""Use case: predict every image of a folder or DICOM study list into a Parquet file.

A batch run reads images from disk and writes its results to a file (and optionally a FHIR
Bundle); nothing goes to the patient store and no audit entry is made, since no patient's
chart is read or changed. The model version is resolved once, so every worker uses the same
one. Resumption: inputs already in the output (by key) are skipped, and the output is
rewritten every `flush_every` results, so an interrupted run loses at most that many; an
output written by another model version is refused rather than mixed. Unreadable inputs go
to an error table (`<out>.errors.parquet`: key and reason) and are tried again next run.

For a chest classifier, with `lungs` and a lung segmentation model in production, each
finding's explanation is checked against the lungs as for one image
(`services.explanation_lungs`): the image is read again in this process after its batch,
explained with Grad-CAM and outlined by the lung model, and the share, the mostly-outside
flag and the sentence fill the ``lung_*`` columns (an image the check fails on keeps its
finding, with the reason in ``lung_note``).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import nn

from clinsight.data.batch_inputs import BatchInput, collect_inputs
from clinsight.data.images import read_image
from clinsight.errors import ClinsightError, DataError
from clinsight.files import write_bytes_atomic, write_text_atomic
from clinsight.inference.batch import (
    NO_LUNG_CHECK,
    RESULT_COLUMNS,
    Backend,
    Batch,
    BatchModel,
    iter_local,
    iter_ray,
)
from clinsight.inference.cluster import ray_session
from clinsight.inference.predictors import ImagePredictor, load_torch_model
from clinsight.interop.fhir_batch import batch_bundle, batch_bundle_json
from clinsight.registry.image import ModelVersion, Stage, get_model
from clinsight.services.diagnosis import suitability_warnings
from clinsight.services.explanation_lungs import LungModels, image_lung_share, lung_segmenter

__all__ = ["BatchOutcome", "errors_path", "predict_batch", "read_results"]

ProgressCallback = Callable[[int, int], None]
"""Called with (inputs done this run, inputs to do this run) after every batch."""


@dataclass(frozen=True)
class BatchOutcome:
    """What a batch run did: counts of this run, its errors, and where it wrote."""

    out: Path
    errors_file: Path
    bundle: Path | None
    model_name: str
    model_version: int
    inputs: int
    skipped: int
    predicted: int
    refused: int
    errors: pd.DataFrame
    seconds: float
    lung_flagged: int = 0
    """Findings of this run whose explanation lies mostly outside the lungs."""

    @property
    def images_per_second(self) -> float:
        """Inputs handled per second this run (errors included)."""
        done = self.predicted + len(self.errors)
        return done / self.seconds if self.seconds > 0 else 0.0


def errors_path(out: Path) -> Path:
    """The error table beside `out` (``results.parquet`` → ``results.errors.parquet``)."""
    return out.with_name(f"{out.stem}.errors.parquet")


def read_results(out: Path) -> pd.DataFrame:
    """The results already in `out` (an empty table when there is no file yet).

    Raises:
        DataError: the file is not a results table of a batch run.
    """
    if not out.exists():
        return pd.DataFrame({column: pd.Series(dtype=object) for column in RESULT_COLUMNS})
    try:
        table = pd.read_parquet(out)
    except (OSError, ValueError) as exc:
        raise DataError(f"{out.name} is not a readable Parquet file; choose another --out") from exc
    for column, value in NO_LUNG_CHECK.items():
        if column not in table.columns:  # a results file written before the lung check
            table[column] = value
    missing = [c for c in RESULT_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"{out.name} is not the results of a batch run (no column {missing[0]!r}); "
            "choose another --out"
        )
    return table


def predict_batch(
    source: Path,
    out: Path,
    *,
    registry_dir: Path,
    model_name: str,
    version: int | None = None,
    stage: Stage | str | None = None,
    backend: Backend = "local",
    workers: int = 2,
    threads: int = 0,
    batch_size: int = 64,
    warn_only: bool = False,
    ray_address: str | None = None,
    object_store_mb: int = 256,
    fhir_bundle: Path | None = None,
    flush_every: int = 1024,
    progress: ProgressCallback | None = None,
    lungs: LungModels | None = None,
) -> BatchOutcome:
    """Predict the inputs of `source` not yet in `out` and write the results there.

    `threads` are the local backend's ONNX Runtime threads (0: every core); `workers` the
    Ray backend's actors (one CPU each; a local Ray instance gets that many CPUs). With
    `lungs`, a chest classifier's findings get the lung check (module doc).

    Raises:
        DataNotFoundError, DataError: `source` cannot be listed, or `out` holds results of
            another model version or is not a results table.
        ModelNotFoundError, IntegrityError, ModelError: the model cannot be loaded or run.
        ConfigurationError: the Ray cluster cannot be reached.
    """
    started = time.perf_counter()
    inputs = collect_inputs(source)
    model = get_model(registry_dir, model_name, version, stage, verify=True)
    previous = read_results(out)
    _check_same_model(previous, model, out)
    done = set(previous["key"].astype(str))
    pending = [item for item in inputs if item.key not in done]
    spec = BatchModel(registry_dir, model.name, model.version, warn_only)
    check = _LungCheck.of(lungs, model, pending)
    new_rows: list[pd.DataFrame] = []
    error_rows: list[pd.DataFrame] = []
    unflushed = finished = 0
    with _batches(pending, spec, backend, workers, threads, batch_size, ray_address,
                  object_store_mb) as batches:  # fmt: skip
        for batch in batches:
            frame = pd.DataFrame(batch)
            failed = frame["status"] == "error"
            error_rows.append(frame.loc[failed, ["key", "reason"]])
            results = _with_header_warnings(frame.loc[~failed], model)
            if check is not None:
                results = check.filled(results)
            new_rows.append(results)
            finished += len(frame)
            unflushed += len(results)
            if unflushed >= flush_every:
                _write_table(out, _combined(previous, new_rows))
                unflushed = 0
            if progress is not None:
                progress(finished, len(pending))
    table = _combined(previous, new_rows)
    errors = pd.concat([pd.DataFrame(columns=["key", "reason"]), *error_rows], ignore_index=True)
    _write_table(out, table)
    _write_table(errors_path(out), errors)
    if fhir_bundle is not None:
        bundle = batch_bundle_json(batch_bundle(table.to_dict(orient="records")))
        write_text_atomic(fhir_bundle, json.dumps(bundle, indent=1))
    fresh = table.iloc[len(previous) :]
    return BatchOutcome(
        out=out, errors_file=errors_path(out), bundle=fhir_bundle, model_name=model.name,
        model_version=model.version, inputs=len(inputs), skipped=len(inputs) - len(pending),
        predicted=len(fresh), refused=int((fresh["status"] == "refused").sum()),
        errors=errors, seconds=time.perf_counter() - started,
        lung_flagged=int(fresh["lung_mostly_outside"].astype(bool).sum()),
    )  # fmt: skip


@contextmanager
def _batches(
    pending: list[BatchInput], spec: BatchModel, backend: Backend, workers: int, threads: int,
    batch_size: int, address: str | None, store_mb: int,
) -> Iterator[Iterator[Batch]]:  # fmt: skip
    """The chosen backend's result batches, inside a Ray session for the Ray backend."""
    if backend == "local" or not pending:
        yield iter_local(pending, spec, batch_size=batch_size, threads=threads)
        return
    with ray_session(address, num_cpus=workers, object_store_mb=store_mb):
        yield iter_ray(pending, spec, batch_size=batch_size, workers=workers)


def _check_same_model(previous: pd.DataFrame, model: ModelVersion, out: Path) -> None:
    if previous.empty:
        return
    found = previous[["model_name", "model_version", "artifact_sha256"]].drop_duplicates()
    expected = (model.name, model.version, model.artifact_sha256)
    if len(found) != 1 or tuple(found.iloc[0]) != expected:
        name, number = found.iloc[0]["model_name"], found.iloc[0]["model_version"]
        raise DataError(
            f"{out.name} holds results of {name} v{number}, not {model.name} v{model.version}: "
            "write to another --out, or choose that version to resume it"
        )


def _with_header_warnings(results: pd.DataFrame, model: ModelVersion) -> pd.DataFrame:
    """Models without an intended-use gate: the DICOM header's modality and body part
    checked against the training data (as for one image), added to the warnings."""
    if model.intended_use_gate is not None or results.empty:
        return results
    results = results.copy()
    results["warnings"] = [
        " | ".join([w for w in (str(old),) if w] + list(suitability_warnings(
            model, {"modality": str(modality), "body_part": str(body)})))
        for old, modality, body in zip(
            results["warnings"], results["modality"], results["body_part"], strict=True)
    ]  # fmt: skip
    return results


@dataclass(frozen=True)
class _LungCheck:
    """What the lung check of a run needs: the lung models, the classifier's predictor and
    PyTorch network (loaded once, for Grad-CAM) and where each input is."""

    lungs: LungModels
    predictor: ImagePredictor
    network: nn.Module
    paths: dict[str, Path]

    @classmethod
    def of(
        cls, lungs: LungModels | None, model: ModelVersion, pending: list[BatchInput]
    ) -> _LungCheck | None:
        """The check of a run, or None: no `lungs`, not a chest classifier, no lung model
        in production, or nothing to predict."""
        if lungs is None or not pending or lung_segmenter(lungs, model) is None:
            return None
        return cls(lungs, ImagePredictor(model, threads=1), load_torch_model(model),
                   {item.key: item.path for item in pending})  # fmt: skip

    def filled(self, results: pd.DataFrame) -> pd.DataFrame:
        """`results` with the ``lung_*`` columns of its findings filled in."""
        results = results.copy()
        labels = self.predictor.model.labels
        for index, row in results.loc[results["status"] == "ok"].iterrows():
            label = str(row["label"])
            try:
                share = image_lung_share(
                    self.lungs, self.predictor, read_image(self.paths[str(row["key"])]),
                    class_index=labels.index(label) if label in labels else None,
                    network=self.network,
                )  # fmt: skip
            except ClinsightError as exc:
                results.loc[index, "lung_note"] = f"The lung check failed: {exc}"
                continue
            if share is None:
                continue
            found = share.overlap
            value = None if found is None else found.share_inside
            results.loc[index, "lung_share"] = float("nan") if value is None else value
            results.loc[index, "lung_mostly_outside"] = share.mostly_outside
            results.loc[index, "lung_note"] = share.sentence()
        return results


def _combined(previous: pd.DataFrame, new_rows: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [frame for frame in (previous, *new_rows) if not frame.empty]
    if not frames:
        return previous
    return pd.concat(frames, ignore_index=True)[list(RESULT_COLUMNS)]


def _write_table(path: Path, table: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    write_bytes_atomic(path, buffer.getvalue())
