"""The Ray backend of batch prediction gives the local backend's rows (one local Ray
cluster of 1 CPU for the module; slow: Ray and its actors start in tens of seconds here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from clinsight.inference.cluster import ray_session
from clinsight.services.batch_predict import predict_batch, read_results
from tests.support.batch import image_folder
from tests.support.image_models import register_tiny

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray instance: 1 CPU, a 100 MiB object store, no dashboard."""
    import ray

    ray.init(address="local", num_cpus=1, object_store_memory=100 * 2**20,
             include_dashboard=False, log_to_driver=False)  # fmt: skip
    yield
    ray.shutdown()


def test_ray_rows_equal_local_rows_and_resume_the_same_way(
    tmp_path: Path, ray_cluster: None
) -> None:
    import ray

    register_tiny(tmp_path / "reg")
    folder = image_folder(tmp_path / "in", images=5)
    options = {"registry_dir": tmp_path / "reg", "model_name": "tiny", "batch_size": 2}
    predict_batch(folder, tmp_path / "local.parquet", backend="local", threads=1, **options)  # type: ignore[arg-type]
    outcome = predict_batch(folder, tmp_path / "ray.parquet", backend="ray", workers=1, **options)  # type: ignore[arg-type]
    assert (outcome.predicted, len(outcome.errors)) == (5, 2)
    assert sorted(outcome.errors["key"]) == ["bad.png", "notes/readme.txt"]
    local = read_results(tmp_path / "local.parquet").sort_values("key", ignore_index=True)
    remote = read_results(tmp_path / "ray.parquet").sort_values("key", ignore_index=True)
    pd.testing.assert_frame_equal(local, remote, check_exact=False, atol=1e-6)
    again = predict_batch(folder, tmp_path / "ray.parquet", backend="ray", workers=1, **options)  # type: ignore[arg-type]
    assert (again.skipped, again.predicted) == (5, 0)
    assert ray.is_initialized()  # a session that found Ray connected leaves it running


def test_ray_session_reuses_a_connected_cluster(ray_cluster: None) -> None:
    import ray

    with ray_session("ray://unreachable:1", num_cpus=1):
        assert ray.cluster_resources()["CPU"] == 1.0  # type: ignore[no-untyped-call]
    assert ray.is_initialized()
