"""The intended-use gate of a model: is an input like the images the model was made for?

Three checks, fitted or declared at training time and stored with the model:

- **header**: the DICOM header values the model's intended use declares (modality, body
  part, photometric interpretation, view); a value present and not declared fails;
- **colour**: a model trained on greyscale images refuses colour pictures (mean chroma,
  max - min channel, above `saturation_limit`); a model trained on colour images (an
  endoscopy model) refuses a greyscale picture (mean chroma below `colour_minimum`);
- **features**: the Mahalanobis distance of the network's penultimate features to the
  nearest class mean (class-conditional means, one shared covariance with Ledoit-Wolf
  shrinkage, both fitted on the training split); the limit is the validation split's
  (1 - target) quantile, so about `rejection_target` of in-distribution images fail;
- **input statistics**: the same distance (one class) on a few statistics of the network
  input (`input_statistics`: brightness, contrast, texture, near-white and near-black
  shares), which a weak network's features may miss (noise, screenshots).

Model-kind-agnostic: the feature gate takes features (N, D) and returns scores; the
caller (an image classifier now, a segmentation model later) extracts the features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.covariance import LedoitWolf

from clinsight.errors import DataError

__all__ = [
    "NOT_FITTED_REASON",
    "OUTSIDE_INTENDED_USE",
    "SATURATION_LIMIT",
    "ExpectedHeaders",
    "FeatureGate",
    "GateAction",
    "IntendedUse",
    "IntendedUseCheck",
    "IntendedUseGate",
    "assess_intended_use",
    "colour_saturation",
    "fit_feature_gate",
    "input_statistics",
]

OUTSIDE_INTENDED_USE = "outside intended use"
"""The finding recorded instead of a label when the gate refuses an input."""
SATURATION_LIMIT = 0.08
"""Mean chroma (0-1) above which a greyscale model's input counts as a colour picture: the
training images have none, so this only tolerates compression noise and tinted exports."""
NOT_FITTED_REASON = (
    "This model version was registered before the intended-use check existed: the image was "
    "not compared with the model's training images."
)


class IntendedUse(StrEnum):
    """The gate's verdict on one input, as stored with the prediction."""

    OK = "ok"
    WARNED = "warned"
    REFUSED = "refused"


class GateAction(StrEnum):
    """What a failed check does: refuse the finding (default) or only warn."""

    REFUSE = "refuse"
    WARN = "warn"


_HEADER_NAMES = {
    "modality": "modality", "body_part": "body part", "photometric":
    "photometric interpretation", "view": "view",
}  # fmt: skip


@dataclass(frozen=True)
class ExpectedHeaders:
    """DICOM header values the model's intended use declares; an empty tuple checks nothing."""

    modality: tuple[str, ...] = ()
    body_part: tuple[str, ...] = ()
    photometric: tuple[str, ...] = ()
    view: tuple[str, ...] = ()

    def reasons(self, source: Mapping[str, str], noun: str) -> list[str]:
        """One sentence per header value present in `source` and not declared."""
        found = []
        for key, label in _HEADER_NAMES.items():
            expected: tuple[str, ...] = getattr(self, key)
            value = str(source.get(key, "")).strip().upper()
            if expected and value and value not in expected:
                found.append(
                    f"The DICOM header gives {label} {value}, but the model is meant for "
                    f"{noun}s with {label} {'/'.join(expected)}."
                )
        return found

    def to_dict(self) -> dict[str, list[str]]:
        """JSON-ready form."""
        return {key: list(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[str]]) -> ExpectedHeaders:
        """Read the stored form (unknown keys are ignored)."""
        return cls(
            **{key: tuple(str(v).upper() for v in data.get(key, ())) for key in _HEADER_NAMES}
        )


@dataclass(frozen=True)
class FeatureGate:
    """Mahalanobis distance to the nearest class mean, with its validation limit.

    `means` (K, D) and `precision` (D, D) are stored as safetensors beside the model;
    the rest is the JSON summary in model.json.
    """

    means: NDArray[np.float64]
    precision: NDArray[np.float64]
    limit: float
    rejection_target: float
    validation_rejected: float
    n_fit: int
    n_validation: int
    method: str = "mahalanobis"
    split: str = "validation"

    @property
    def dimension(self) -> int:
        """The feature dimension D."""
        return int(self.means.shape[1])

    def scores(self, features: ArrayLike) -> NDArray[np.float64]:
        """The distance of each row of `features` (N, D) to its nearest class mean.

        Raises:
            DataError: the features are not (N, D) with the gate's D, or not finite.
        """
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dimension or not np.all(np.isfinite(x)):
            raise DataError(
                f"The gate needs finite features shaped (N, {self.dimension}); got {x.shape}."
            )
        centred = x[:, None, :] - self.means[None, :, :]
        squared = np.einsum("nkd,de,nke->nk", centred, self.precision, centred)
        return np.asarray(np.sqrt(np.maximum(squared.min(axis=1), 0.0)), dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """The JSON part (everything but the arrays)."""
        return {
            "method": self.method, "limit": self.limit, "rejection_target": self.rejection_target,
            "validation_rejected": self.validation_rejected, "n_fit": self.n_fit,
            "n_validation": self.n_validation, "split": self.split, "dimension": self.dimension,
            "classes": int(self.means.shape[0]),
        }  # fmt: skip

    def tensors(self) -> dict[str, NDArray[np.float64]]:
        """The arrays, for a safetensors file."""
        return {
            "means": np.ascontiguousarray(self.means),
            "precision": np.ascontiguousarray(self.precision),
        }

    @classmethod
    def from_parts(
        cls, summary: Mapping[str, Any], tensors: Mapping[str, NDArray[Any]]
    ) -> FeatureGate:
        """Rebuild from `summary()` and `tensors()`.

        Raises:
            DataError: a field or array is missing or malformed.
        """
        try:
            means = np.asarray(tensors["means"], dtype=np.float64)
            precision = np.asarray(tensors["precision"], dtype=np.float64)
            gate = cls(
                means=means, precision=precision, limit=float(summary["limit"]),
                rejection_target=float(summary["rejection_target"]),
                validation_rejected=float(summary["validation_rejected"]),
                n_fit=int(summary["n_fit"]), n_validation=int(summary["n_validation"]),
                method=str(summary.get("method", "mahalanobis")),
                split=str(summary.get("split", "validation")),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"Malformed intended-use gate: {exc}") from exc
        if means.ndim != 2 or precision.shape != (means.shape[1], means.shape[1]):
            raise DataError(
                f"Malformed intended-use gate: means {means.shape}, precision {precision.shape}."
            )
        return gate


def fit_feature_gate(
    train_features: ArrayLike,
    train_classes: ArrayLike,
    val_features: ArrayLike,
    *,
    rejection_target: float = 0.02,
) -> FeatureGate:
    """Class means and a shared shrunk covariance on training features; the limit on
    validation features, so that about `rejection_target` of them score above it.

    Raises:
        DataError: shapes disagree, features are not finite, a split is empty, or the
            target lies outside (0, 0.5).
    """
    x = np.asarray(train_features, dtype=np.float64)
    y = np.asarray(train_classes).ravel()
    v = np.asarray(val_features, dtype=np.float64)
    if x.ndim != 2 or v.ndim != 2 or x.shape[1] != v.shape[1] or len(x) != len(y):
        raise DataError(
            f"The gate needs training features (N, D) with one class each and validation "
            f"features (M, D); got {x.shape}, {y.shape} and {v.shape}."
        )
    if len(x) < 2 or len(v) < 1 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(v))):
        raise DataError("The gate needs finite features, two or more training and one validation.")
    if not 0 < rejection_target < 0.5:
        raise DataError(f"The rejection target must lie in (0, 0.5); got {rejection_target}.")
    classes = np.unique(y)
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    centred = x - means[np.searchsorted(classes, y)]
    covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    precision = np.linalg.pinv(covariance, hermitian=True)
    gate = FeatureGate(means, precision, math.inf, rejection_target, 0.0, len(x), len(v))
    scores = gate.scores(v)
    limit = float(np.quantile(scores, 1.0 - rejection_target, method="higher"))
    return FeatureGate(
        means=means, precision=precision, limit=limit, rejection_target=rejection_target,
        validation_rejected=float(np.mean(scores > limit)), n_fit=len(x), n_validation=len(v),
    )  # fmt: skip


def input_statistics(batch: ArrayLike) -> NDArray[np.float64]:
    """Per image of a network-input batch (N, C, S, S) in [0, 1]: mean, standard deviation,
    mean absolute neighbour difference (texture), shares above 0.95 and below 0.05."""
    x = np.asarray(batch, dtype=np.float64)
    if x.ndim != 4:
        raise DataError(f"Input statistics need a batch (N, C, S, S); got {x.shape}.")
    flat = x.reshape(len(x), -1)
    texture = (np.abs(np.diff(x, axis=3)).mean(axis=(1, 2, 3))
               + np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3))) / 2  # fmt: skip
    return np.stack([flat.mean(axis=1), flat.std(axis=1), texture,
                     (flat > 0.95).mean(axis=1), (flat < 0.05).mean(axis=1)], axis=1)  # fmt: skip


def colour_saturation(pixels: ArrayLike) -> float:
    """Mean chroma (max - min over channels) of an image in [0, 1]; 0 for a grey one."""
    array = np.asarray(pixels, dtype=np.float64)
    if array.ndim != 3 or array.shape[2] < 3:
        return 0.0
    rgb = array[..., :3]
    return float(np.mean(rgb.max(axis=2) - rgb.min(axis=2)))


@dataclass(frozen=True)
class IntendedUseGate:
    """Everything a model stores to check its inputs: what it is meant for and how to tell.

    `noun` names the images ("paediatric chest radiograph") in the sentences a clinician
    reads; `features` (penultimate features) and `inputs` (input statistics) are None
    where not fitted.
    """

    noun: str
    headers: ExpectedHeaders = field(default_factory=ExpectedHeaders)
    features: FeatureGate | None = None
    inputs: FeatureGate | None = None
    greyscale: bool = True
    saturation_limit: float = SATURATION_LIMIT
    action: GateAction = GateAction.REFUSE
    colour_minimum: float | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON part stored in model.json and the card."""
        return {
            "noun": self.noun, "headers": self.headers.to_dict(), "greyscale": self.greyscale,
            "saturation_limit": self.saturation_limit, "action": str(self.action),
            "features": self.features.summary() if self.features else None,
            "inputs": self.inputs.summary() if self.inputs else None,
            **({} if self.colour_minimum is None else {"colour_minimum": self.colour_minimum}),
        }  # fmt: skip

    def tensors(self) -> dict[str, NDArray[np.float64]]:
        """The arrays of the fitted parts, for one safetensors file."""
        parts = {"": self.features, "inputs.": self.inputs}
        return {f"{prefix}{name}": array for prefix, part in parts.items() if part
                for name, array in part.tensors().items()}  # fmt: skip

    @classmethod
    def from_parts(
        cls, summary: Mapping[str, Any], tensors: Mapping[str, NDArray[Any]] | None
    ) -> IntendedUseGate:
        """Rebuild from `summary()` and, where it has a feature gate, its arrays.

        Raises:
            DataError: a field is malformed, or the feature gate's arrays are missing.
        """
        features, inputs, arrays = summary.get("features"), summary.get("inputs"), tensors or {}
        own = {key.removeprefix("inputs."): value for key, value in arrays.items()
               if key.startswith("inputs.")}  # fmt: skip
        try:
            return cls(
                noun=str(summary["noun"]),
                headers=ExpectedHeaders.from_dict(summary.get("headers", {})),
                features=FeatureGate.from_parts(features, arrays) if features else None,
                inputs=FeatureGate.from_parts(inputs, own) if inputs else None,
                greyscale=bool(summary.get("greyscale", True)),
                saturation_limit=float(summary.get("saturation_limit", SATURATION_LIMIT)),
                action=GateAction(summary.get("action", GateAction.REFUSE)),
                colour_minimum=(None if summary.get("colour_minimum") is None
                                else float(summary["colour_minimum"])),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"Malformed intended-use gate: {exc}") from exc


@dataclass(frozen=True)
class IntendedUseCheck:
    """The gate's verdict on one input: status, reasons in plain words, the feature score."""

    status: IntendedUse
    reasons: tuple[str, ...] = ()
    score: float | None = None
    limit: float | None = None
    fitted: bool = True
    input_score: float | None = None
    input_limit: float | None = None

    @property
    def refused(self) -> bool:
        """Whether the input gets no finding."""
        return self.status is IntendedUse.REFUSED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"status": str(self.status), "reasons": list(self.reasons), "score": self.score,
                "limit": self.limit, "fitted": self.fitted, "input_score": self.input_score,
                "input_limit": self.input_limit}  # fmt: skip


def assess_intended_use(
    gate: IntendedUseGate | None,
    *,
    score: float | None,
    pixels: ArrayLike,
    source: Mapping[str, str],
    input_score: float | None = None,
    warn_only: bool = False,
) -> IntendedUseCheck:
    """Check one input: its DICOM header, its colour, its feature and input-statistics
    scores against their limits.

    `score` and `input_score` are the gate's scores of the input (None where not fitted);
    `warn_only` turns a refusal into a warning (as does the gate's own action "warn").
    Without a gate (a model registered before gates) nothing is refused and the check says
    it was not done.
    """
    if gate is None:
        return IntendedUseCheck(IntendedUse.WARNED, (NOT_FITTED_REASON,), fitted=False)
    failed = gate.headers.reasons(source, gate.noun)
    saturation = colour_saturation(pixels)
    if gate.greyscale and saturation > gate.saturation_limit:
        failed.append(
            f"This is a colour picture (mean colour saturation {saturation:.2f}, limit "
            f"{gate.saturation_limit:.2f}), but the model is meant for greyscale {gate.noun}s."
        )
    if not gate.greyscale and gate.colour_minimum is not None and saturation < gate.colour_minimum:
        failed.append(
            f"This is a greyscale picture (mean colour saturation {saturation:.2f}, at least "
            f"{gate.colour_minimum:.2f} expected), but the model is meant for colour "
            f"{gate.noun}s."
        )
    limit = gate.features.limit if gate.features else None
    if score is not None and limit is not None and score > limit:
        failed.append(
            f"This image does not look like a {gate.noun} the model was trained on "
            f"(out-of-distribution score {score:.1f}, limit {limit:.1f})."
        )
    input_limit = gate.inputs.limit if gate.inputs else None
    if input_score is not None and input_limit is not None and input_score > input_limit:
        failed.append(
            f"This image's brightness, contrast and texture are unlike the {gate.noun}s the "
            f"model was trained on (input-statistics score {input_score:.1f}, limit "
            f"{input_limit:.1f})."
        )
    reasons: tuple[str, ...] = ()
    if not failed:
        status = IntendedUse.OK
    elif warn_only or gate.action is GateAction.WARN:
        status, reasons = IntendedUse.WARNED, tuple(failed)
    else:
        status, reasons = IntendedUse.REFUSED, (*failed, "No finding is given.")
    return IntendedUseCheck(
        status, reasons, score, limit, input_score=input_score, input_limit=input_limit
    )
