"""Shared fixtures: the real data directory (../shared/data unless CLINSIGHT_DATA_DIR is set)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clinsight.config import get_settings
from clinsight.data.tabular import TabularDataset, load_uci_heart
from clinsight.imaging.specs import TrainConfig
from clinsight.services.training import ImageTrainingOutcome, train_and_register
from tests.support.data import shared_data
from tests.support.survival_models import train_gbsg2


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data directory; tests needing a file skip only if the whole folder is absent."""
    path = shared_data()
    if not path.is_dir():
        pytest.skip(f"shared data directory {path} is not present")
    return path


@pytest.fixture(scope="session")
def survival_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with the small GBSG2 survival model in production, trained once per run
    (tests that change it work on a copy)."""
    root = tmp_path_factory.mktemp("survival-registry")
    train_gbsg2(root)
    return root


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own HOME and registry; the data directory stays the shared one."""
    monkeypatch.setenv("CLINSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLINSIGHT_DATA_DIR", str(shared_data()))
    monkeypatch.setenv("CLINSIGHT_ALLOW_DOWNLOAD", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


TINY_TRAINING = TrainConfig(
    architecture="cnn", width=4, epochs=2, batch_size=32, threads=1, train_subset=128
)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> ImageTrainingOutcome:
    """BreastMNIST, 128 training images, 2 epochs, registered once per session (candidate).

    It proves the pipeline, not the accuracy; tests that need it in production copy it.
    """
    data = shared_data()
    if not (data / "medmnist" / "breastmnist.npz").exists():
        pytest.skip("BreastMNIST is not in the shared data directory")
    root = tmp_path_factory.mktemp("trained")
    return train_and_register(
        data, root / "registry", "breastmnist", TINY_TRAINING, run_dir=root / "run",
        n_bootstrap=50,
    )  # fmt: skip


@pytest.fixture(scope="session")
def cleveland(data_dir: Path) -> TabularDataset:
    """UCI heart disease, Cleveland: 303 patients, 13 typed features."""
    return load_uci_heart("cleveland", data_dir)
