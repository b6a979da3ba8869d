"""A tiny model trained on real BreastMNIST and registered once per test session."""

from __future__ import annotations

import pytest

from clinsight.imaging.training import TrainConfig
from clinsight.services.training import ImageTrainingOutcome, train_and_register
from tests.conftest import _shared_data

TINY = TrainConfig(
    architecture="cnn", width=4, epochs=2, batch_size=32, threads=1,
    train_subset=128,
)  # fmt: skip


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> ImageTrainingOutcome:
    """BreastMNIST, 128 training images, 2 epochs: proves the pipeline, not the accuracy."""
    data = _shared_data()
    if not (data / "medmnist" / "breastmnist.npz").exists():
        pytest.skip("BreastMNIST is not in the shared data directory")
    root = tmp_path_factory.mktemp("trained")
    return train_and_register(
        data, root / "registry", "breastmnist", TINY, run_dir=root / "run", n_bootstrap=50
    )
