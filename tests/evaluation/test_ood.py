"""The intended-use gate: feature scores and their validation limit, headers, colour, verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from clinsight.errors import DataError
from clinsight.evaluation.ood import (
    NOT_FITTED_REASON,
    ExpectedHeaders,
    FeatureGate,
    GateAction,
    IntendedUse,
    IntendedUseGate,
    assess_intended_use,
    colour_saturation,
    fit_feature_gate,
)

CHEST = ExpectedHeaders(modality=("CR", "DX"), body_part=("CHEST",), view=("AP", "PA"))


def _clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 2, n)
    features = rng.normal(size=(n, 8)) + np.where(classes[:, None] == 1, 3.0, -3.0)
    return features, classes


def _gate(action: GateAction = GateAction.REFUSE) -> IntendedUseGate:
    train, classes = _clusters(400, 0)
    val, _ = _clusters(200, 1)
    features = fit_feature_gate(train, classes, val, rejection_target=0.02)
    return IntendedUseGate("chest radiograph", CHEST, features, action=action)


def test_the_limit_rejects_the_target_share_of_validation_and_far_points_score_above() -> None:
    train, classes = _clusters(400, 0)
    val, _ = _clusters(200, 1)
    gate = fit_feature_gate(train, classes, val, rejection_target=0.02)
    scores = gate.scores(val)
    assert gate.validation_rejected == float(np.mean(scores > gate.limit)) <= 0.02
    assert (gate.n_fit, gate.n_validation, gate.dimension) == (400, 200, 8)
    far = np.full((3, 8), 40.0)
    assert np.all(gate.scores(far) > 3 * gate.limit)
    assert gate.scores(gate.means).tolist() == pytest.approx([0.0, 0.0], abs=1e-9)


def test_the_feature_gate_round_trips_through_its_stored_parts() -> None:
    gate = _gate()
    assert gate.features is not None
    again = IntendedUseGate.from_parts(gate.summary(), gate.features.tensors())
    assert again.summary() == gate.summary()
    np.testing.assert_array_equal(again.features.precision, gate.features.precision)  # type: ignore[union-attr]


def test_malformed_gates_and_features_are_refused() -> None:
    gate = _gate().features
    assert gate is not None
    with pytest.raises(DataError, match=r"features shaped \(N, 8\); got \(2, 3\)"):
        gate.scores(np.zeros((2, 3)))
    with pytest.raises(DataError, match="Malformed intended-use gate"):
        FeatureGate.from_parts({"limit": 1.0}, gate.tensors())
    with pytest.raises(DataError, match=r"rejection target must lie in \(0, 0.5\)"):
        fit_feature_gate(np.zeros((4, 2)), [0, 0, 1, 1], np.zeros((2, 2)), rejection_target=0.6)


def test_header_values_outside_the_declared_ones_are_named() -> None:
    source = {"modality": "CT", "body_part": "CHEST", "view": "", "photometric": "MONOCHROME2"}
    assert CHEST.reasons(source, "chest radiograph") == [
        "The DICOM header gives modality CT, but the model is meant for chest radiographs "
        "with modality CR/DX."
    ]
    assert CHEST.reasons({"modality": "dx", "body_part": "CHEST"}, "chest radiograph") == []


def test_colour_saturation_is_zero_for_grey_and_high_for_colour() -> None:
    grey = np.full((8, 8, 3), 0.4)
    assert colour_saturation(grey) == 0.0
    assert colour_saturation(np.zeros((8, 8))) == 0.0
    red = np.zeros((8, 8, 3))
    red[..., 0] = 1.0
    assert colour_saturation(red) == 1.0


def test_a_far_input_is_refused_in_words_and_an_ordinary_one_passes() -> None:
    gate = _gate()
    assert gate.features is not None
    grey = np.zeros((8, 8))
    ok = assess_intended_use(gate, score=0.5, pixels=grey, source={})
    assert (ok.status, ok.reasons, ok.limit) == (IntendedUse.OK, (), gate.features.limit)
    far = assess_intended_use(gate, score=41.25, pixels=grey, source={"modality": "CR"})
    assert far.refused
    assert far.reasons == (
        f"This image does not look like a chest radiograph the model was trained on "
        f"(out-of-distribution score 41.2, limit {gate.features.limit:.1f}).",
        "No finding is given.",
    )


def test_a_colour_photo_is_refused_and_warn_mode_only_warns() -> None:
    photo = np.zeros((8, 8, 3))
    photo[..., 1] = 0.9
    refused = assess_intended_use(_gate(), score=None, pixels=photo, source={})
    assert refused.status is IntendedUse.REFUSED
    assert refused.reasons[0] == (
        "This is a colour picture (mean colour saturation 0.90, limit 0.08), but the model is "
        "meant for greyscale chest radiographs."
    )
    warned = assess_intended_use(_gate(GateAction.WARN), score=None, pixels=photo, source={})
    assert (warned.status, len(warned.reasons)) == (IntendedUse.WARNED, 1)
    by_setting = assess_intended_use(_gate(), score=None, pixels=photo, source={}, warn_only=True)
    assert by_setting.status is IntendedUse.WARNED


def test_without_a_gate_nothing_is_refused_and_the_check_says_so() -> None:
    check = assess_intended_use(None, score=None, pixels=np.ones((4, 4, 3)), source={})
    assert (check.status, check.reasons, check.fitted) == (
        IntendedUse.WARNED, (NOT_FITTED_REASON,), False,
    )  # fmt: skip
    assert not check.refused
