"""Use case: predict every image of a folder or DICOM study list into a Parquet file.

A batch run reads images from disk and writes its results to a file (and optionally a FHIR
Bundle); nothing goes to the patient store and no audit entry is made, since no patient's
chart is read or changed. The model version is resolved once, so every worker uses the same
one. Resumption: inputs already in the output (by key) are skipped, and the output is
rewritten every `flush_every` results, so an interrupted run loses at most that many; an
output written by another model version is refused rather than mixed. Unreadable inputs go
to an error table (`<out>.errors.parquet`: key and reason) and are tried again next run.
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

from clinsight.data.batch_inputs import BatchInput, collect_inputs
from clinsight.errors import DataError
from clinsight.files import write_bytes_atomic, write_text_atomic
from clinsight.inference.batch import (
    RESULT_COLUMNS,
    Backend,
    Batch,
    BatchModel,
    iter_local,
    iter_ray,
)
from clinsight.inference.cluster import ray_session
from clinsight.interop.fhir_batch import batch_bundle, batch_bundle_json
from clinsight.registry.image import ModelVersion, Stage, get_model
from clinsight.services.diagnosis import suitability_warnings

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
) -> BatchOutcome:
    """Predict the inputs of `source` not yet in `out` and write the results there.

    `threads` are the local backend's ONNX Runtime threads (0: every core); `workers` the
    Ray backend's actors (one CPU each; a local Ray instance gets that many CPUs).

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


def _combined(previous: pd.DataFrame, new_rows: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [frame for frame in (previous, *new_rows) if not frame.empty]
    if not frames:
        return previous
    return pd.concat(frames, ignore_index=True)[list(RESULT_COLUMNS)]


def _write_table(path: Path, table: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    write_bytes_atomic(path, buffer.getvalue())
