"""Data-parallel image training on Ray Train registers the same artifacts (slow: Ray)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clinsight.data.medmnist import Split, load_medmnist
from clinsight.errors import ModelError
from clinsight.imaging.specs import TrainConfig
from clinsight.inference.predictors import ImagePredictor
from clinsight.registry.image import get_model
from clinsight.services.distributed_training import train_data_parallel
from clinsight.services.training import train_and_register

CONFIG = TrainConfig(architecture="cnn", width=8, epochs=2, batch_size=32, seed=1,
                     class_weighting="inverse", threads=1, train_subset=256)  # fmt: skip


def test_fewer_than_one_worker_is_refused(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(ModelError, match="at least 1 worker"):
        train_data_parallel(data_dir, "pneumoniamnist", CONFIG, workers=0,
                            checkpoint_dir=tmp_path)  # fmt: skip


@pytest.mark.slow
def test_two_ray_workers_register_what_one_process_registers(
    tmp_path: Path, data_dir: Path
) -> None:
    import ray

    ray.init(address="local", num_cpus=2, object_store_memory=100 * 2**20,
             include_dashboard=False, log_to_driver=False)  # fmt: skip
    try:
        parallel = train_and_register(
            data_dir, tmp_path / "reg", "pneumoniamnist", CONFIG, name="ddp",
            run_dir=tmp_path / "ddp", n_bootstrap=50, workers=2,
        )  # fmt: skip
    finally:
        ray.shutdown()
    single = train_and_register(
        data_dir, tmp_path / "reg", "pneumoniamnist", CONFIG, name="single",
        run_dir=tmp_path / "single", n_bootstrap=50,
    )  # fmt: skip
    assert parallel.model is not None
    assert single.model is not None
    files = {p.name for p in parallel.model.path.iterdir()}
    assert files == {p.name for p in single.model.path.iterdir()}
    assert parallel.train.epochs_run == single.train.epochs_run == 2
    assert parallel.model.training["data_parallel_workers"] == 2
    images, _ = load_medmnist(data_dir, "pneumoniamnist", 28).split(Split.VAL)
    predictor = ImagePredictor(get_model(tmp_path / "reg", "ddp"), threads=1)
    predictions = predictor.predict_many([np.asarray(image) for image in images[:4]])
    assert len(predictions) == 4
