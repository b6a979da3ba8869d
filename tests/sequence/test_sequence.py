"""Binning, networks, training, explanations and baselines on a few real stays of set A."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from clinsight.data.physionet2012 import load_physionet2012, load_spec
from clinsight.data.tasks import IN_HOSPITAL_MORTALITY_48H, task_samples
from clinsight.errors import DataError, ModelError
from clinsight.sequence.binning import BinSpec, SequenceArrays, Standardiser, bin_samples
from clinsight.sequence.explain import explain_stay
from clinsight.sequence.networks import (
    ARCHITECTURES,
    SequenceNetworkConfig,
    build_sequence_network,
)
from clinsight.sequence.summaries import logistic_regression, summary_features, summary_names
from clinsight.sequence.training import SequenceTrainConfig, train_sequence_model
from tests.support.progression import tiny_set


@pytest.fixture(scope="module")
def arrays(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SequenceArrays:
    folder, outcomes = tiny_set(data_dir, tmp_path_factory.mktemp("tiny"))
    samples, _ = task_samples(IN_HOSPITAL_MORTALITY_48H, load_physionet2012(folder, outcomes))
    return bin_samples(samples, BinSpec.from_spec(load_spec()))


def test_binning_of_a_real_stay(arrays: SequenceArrays) -> None:
    spec = BinSpec.from_spec(load_spec())
    i = int(np.flatnonzero(arrays.patient_ids == "132539")[0])
    hr = spec.variables.index("HR")
    assert arrays.values.shape == (36, 48, 37)
    assert arrays.values[i, 0, hr] == 77.0  # 00:07 73 then 00:37 77: the bin's last value
    assert arrays.labels[i] == 0
    assert arrays.saps1[i] == 6.0
    urine = spec.variables.index("Urine")
    assert arrays.values[i, 0, urine] == pytest.approx(np.log1p(960.0))  # 900 + 60 mL
    assert arrays.counts[i, hr] == 37  # HR rows of 132539.txt
    assert sorted(arrays.labels.tolist()) == [0] * 24 + [1] * 12


def test_standardiser_gives_mask_and_time_since_last(arrays: SequenceArrays) -> None:
    inputs = Standardiser.fit(arrays).transform(arrays)
    observed = ~np.isnan(arrays.values)
    assert np.array_equal(inputs.mask, observed.astype(np.float32))
    assert np.all(inputs.x[~observed] == 0)
    i, j = 0, BinSpec.from_spec(load_spec()).variables.index("HR")
    seen = np.flatnonzero(observed[i, :, j])
    if seen.size and seen[0] + 2 < 48 and not observed[i, seen[0] + 1, j]:
        assert inputs.delta[i, seen[0] + 2, j] == pytest.approx(2 / 48)


def test_binning_refuses_a_variable_the_model_lacks(arrays: SequenceArrays, data_dir: Path,
                                                    tmp_path: Path) -> None:  # fmt: skip
    folder, outcomes = tiny_set(data_dir, tmp_path, survivors=2, deaths=1)
    samples, _ = task_samples(IN_HOSPITAL_MORTALITY_48H, load_physionet2012(folder, outcomes))
    with pytest.raises(DataError, match="is not an input of this model"):
        bin_samples(samples, BinSpec(("HR",)))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_gives_one_logit_per_stay(
    architecture: str, arrays: SequenceArrays
) -> None:
    inputs = Standardiser.fit(arrays).transform(arrays)
    config = SequenceNetworkConfig(architecture, 37, inputs.static.shape[1], hidden=8)
    network = build_sequence_network(config).eval()
    tensors = [
        torch.from_numpy(a[:5]) for a in (inputs.x, inputs.mask, inputs.delta, inputs.static)
    ]
    assert network(*tensors).shape == (5,)
    attribution = explain_stay(network, inputs, steps=16)
    assert attribution.values.shape == (48, 37)
    total = attribution.values.sum()
    assert total == pytest.approx(attribution.logit - attribution.baseline_logit, abs=0.05)


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ModelError, match="unknown sequence architecture 'tcn'"):
        build_sequence_network(SequenceNetworkConfig("tcn", 3, 2))


def test_training_is_seeded_and_resumes(arrays: SequenceArrays, tmp_path: Path) -> None:
    inputs = Standardiser.fit(arrays).transform(arrays)
    config = SequenceTrainConfig(hidden=8, epochs=2, batch_size=16, threads=1)
    first = train_sequence_model(inputs, arrays.labels, inputs, arrays.labels, config)
    again = train_sequence_model(inputs, arrays.labels, inputs, arrays.labels, config)
    assert [e.train_loss for e in first.history] == [e.train_loss for e in again.history]
    one = SequenceTrainConfig(hidden=8, epochs=1, batch_size=16, threads=1)
    train_sequence_model(inputs, arrays.labels, inputs, arrays.labels, one, checkpoint_dir=tmp_path)
    resumed = train_sequence_model(
        inputs, arrays.labels, inputs, arrays.labels, config, checkpoint_dir=tmp_path
    )
    assert len(resumed.history) == 2
    assert resumed.history[1].train_loss == pytest.approx(first.history[1].train_loss, rel=1e-5)
    with pytest.raises(ModelError, match="with and without the outcome"):
        train_sequence_model(inputs, arrays.labels, inputs, np.zeros(36, np.int64), config)


def test_summaries_and_a_baseline(arrays: SequenceArrays) -> None:
    features = summary_features(arrays)
    names = summary_names(BinSpec.from_spec(load_spec()).variables)
    assert features.shape == (36, len(names))
    hr = BinSpec.from_spec(load_spec()).variables.index("HR")
    assert features[:, names.index("HR.count")].tolist() == arrays.counts[:, hr].tolist()
    seen = arrays.counts[:, hr] > 0
    np.testing.assert_array_equal(
        features[seen, names.index("HR.max")], np.nanmax(arrays.values[seen, :, hr], axis=1)
    )
    risk = logistic_regression().fit(features, arrays.labels).predict_proba(features)[:, 1]
    assert risk.shape == (36,)
