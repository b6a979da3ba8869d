"""The Cleveland spec's categories for the tabular tests (the data: tests/conftest.py)."""

from __future__ import annotations

import pytest

from clinsight.data.tabular import TabularDataset


@pytest.fixture(scope="session")
def categories(cleveland: TabularDataset) -> dict[str, tuple[str, ...]]:
    """The spec's known categories, as `RiskModel` takes them."""
    return {f.name: f.categories for f in cleveland.spec.features if f.categories}
