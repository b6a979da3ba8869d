"""The result of a progression model for one stay: the calibrated risk, and the variables
and hours that drove it (an attribution over variables x time bins).

The risk comes from the ONNX graph (ONNX Runtime) where the version has one, else from
PyTorch; the explanation always from the PyTorch network (`sequence.explain`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from clinsight.data.longitudinal import PatientRecord
from clinsight.data.tasks import ProgressionTask
from clinsight.errors import DataError, ModelError
from clinsight.registry.progression import (
    INPUT_NAMES,
    ONNX_FILE,
    ProgressionModelVersion,
    load_progression_model,
)
from clinsight.sequence.binning import SequenceArrays, bin_samples
from clinsight.sequence.explain import explain_stay
from clinsight.sequence.model import ProgressionModel

__all__ = [
    "Driver",
    "ProgressionAssessment",
    "ProgressionPredictor",
    "ProgressionResult",
    "alert_level",
    "predict_stay",
]

TOP_DRIVERS = 5


class ProgressionPredictor:
    """A registered progression version, its PyTorch model and its ONNX session."""

    def __init__(self, version: ProgressionModelVersion, threads: int = 1) -> None:
        self.version = version
        self.model: ProgressionModel = load_progression_model(version)
        self.session: Any = None
        if version.onnx:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            try:
                self.session = ort.InferenceSession(
                    str(version.path / ONNX_FILE), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # ONNX Runtime raises its own untyped exceptions
                raise ModelError(f"the ONNX graph of {version.name} does not load.") from exc

    def logits(self, arrays: SequenceArrays) -> NDArray[np.float64]:
        """(N,) uncalibrated logits (ONNX Runtime where available)."""
        if self.session is None:
            return self.model.logits(arrays)
        inputs = self.model.inputs(arrays)
        feed = dict(
            zip(INPUT_NAMES, (inputs.x, inputs.mask, inputs.delta, inputs.static), strict=True)
        )
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float64)

    def risk(self, arrays: SequenceArrays) -> NDArray[np.float64]:
        """(N,) calibrated probabilities."""
        return np.asarray(expit(self.logits(arrays) / self.model.temperature), dtype=np.float64)


@dataclass(frozen=True)
class Driver:
    """A variable whose observations in some hours pushed the risk up or down."""

    variable: str
    hours: tuple[float, float]
    contribution: float
    """In logit units (positive: raises the risk)."""

    @property
    def direction(self) -> str:
        return "raises" if self.contribution > 0 else "lowers"


@dataclass(frozen=True)
class ProgressionResult:
    """One stay's risk, its drivers and the attribution heat map (bins x variables)."""

    model: ProgressionModelVersion
    patient_id: str
    risk: float
    drivers: tuple[Driver, ...]
    heat: tuple[tuple[float, ...], ...]
    variables: tuple[str, ...]
    bin_hours: float
    method: str
    skipped: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": {"name": self.model.name, "version": self.model.version},
            "patient_id": self.patient_id, "risk": self.risk,
            "drivers": [{"variable": d.variable, "hours": list(d.hours),
                         "contribution": d.contribution, "direction": d.direction}
                        for d in self.drivers],
            "explanation": {"method": self.method, "variables": list(self.variables),
                            "bin_hours": self.bin_hours, "heat": [list(r) for r in self.heat]},
            "skipped": list(self.skipped),
        }  # fmt: skip


@dataclass(frozen=True)
class ProgressionAssessment:
    """A stay's result, its alert level, and the ids of the Observations it rests on."""

    result: ProgressionResult
    level: str
    observation_ids: tuple[str, ...]
    input_sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the result with the calibrated probability, level and thresholds."""
        version = self.result.model
        return {
            **self.result.to_dict(), "probability": self.result.risk, "level": self.level,
            "thresholds": version.thresholds,
            "model": {"name": version.name, "version": version.version,
                      "artifact_sha256": version.artifact_sha256},
            "basis": [f"Observation/{i}" for i in self.observation_ids],
        }  # fmt: skip


def alert_level(version: ProgressionModelVersion, risk: float) -> str:
    """``critical``, ``warning`` or ``info`` by the version's validation thresholds; always
    ``info`` for a version registered without them (an old version)."""
    cuts = version.thresholds
    if not cuts:
        return "info"
    if risk >= float(cuts["critical"]):
        return "critical"
    return "warning" if risk >= float(cuts["warning"]) else "info"


def _drivers(
    values: NDArray[np.float64], variables: tuple[str, ...], bin_hours: float
) -> tuple[Driver, ...]:
    """The strongest variables (summed over bins), each with the bin that moved it most."""
    totals = values.sum(axis=0)
    order = np.argsort(-np.abs(totals))[:TOP_DRIVERS]
    out = []
    for j in order:
        if totals[j] == 0:
            continue
        peak = int(np.argmax(np.abs(values[:, j])))
        out.append(
            Driver(variables[j], (peak * bin_hours, (peak + 1) * bin_hours), float(totals[j]))
        )
    return tuple(out)


def predict_stay(
    predictor: ProgressionPredictor,
    record: PatientRecord,
    task: ProgressionTask,
    skipped: tuple[str, ...] = (),
) -> ProgressionResult:
    """The risk and explanation of one record at the task's prediction time.

    Raises:
        DataError: the record has no anchor, or a variable that is not a model input.
    """
    sample = task.sample(record, with_label=False)
    if sample is None:
        raise DataError(f"stay {record.patient_id} has no admission time to predict from.")
    bins = predictor.model.bins
    arrays = bin_samples([sample], bins)
    risk = float(predictor.risk(arrays)[0])
    attribution = explain_stay(predictor.model.network, predictor.model.inputs(arrays))
    return ProgressionResult(
        model=predictor.version, patient_id=record.patient_id, risk=risk,
        drivers=_drivers(attribution.values, bins.variables, bins.bin_hours),
        heat=tuple(tuple(float(v) for v in row) for row in attribution.values),
        variables=bins.variables, bin_hours=bins.bin_hours, method=attribution.method,
        skipped=skipped,
    )  # fmt: skip
