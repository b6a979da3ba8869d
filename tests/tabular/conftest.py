"""Cleveland heart data, loaded once for the tabular tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinsight.data.tabular import TabularDataset, load_uci_heart


@pytest.fixture(scope="session")
def cleveland(data_dir: Path) -> TabularDataset:
    """UCI heart disease, Cleveland: 303 patients, 13 typed features."""
    return load_uci_heart("cleveland", data_dir)


@pytest.fixture(scope="session")
def categories(cleveland: TabularDataset) -> dict[str, tuple[str, ...]]:
    """The spec's known categories, as `RiskModel` takes them."""
    return {f.name: f.categories for f in cleveland.spec.features if f.categories}
