"""The training loop: every task type, determinism, resume, time budget, real data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clinsight.data.medmnist import TaskType, load_medmnist
from clinsight.errors import ModelError
from clinsight.imaging.training import EpochRecord, TrainConfig, train_image_model
from clinsight.imaging.transforms import AugmentSpec
from tests.imaging.synthetic import synthetic_splits

MILD = AugmentSpec(rotate_degrees=5, scale=0.05, translate=0.05, contrast_gamma=0.1, intensity=0.05)
FAST = {
    "architecture": "cnn", "width": 4, "batch_size": 16, "threads": 1,
    "augment": MILD, "label_smoothing": 0.0,
}  # fmt: skip


@pytest.mark.parametrize(
    ("task", "channels", "classes"),
    [
        (TaskType.BINARY, 1, 2),
        (TaskType.MULTI_CLASS, 3, 4),
        (TaskType.ORDINAL, 3, 5),
        (TaskType.MULTI_LABEL, 1, 4),
    ],
)
def test_each_task_type_trains_and_learns(task: TaskType, channels: int, classes: int) -> None:
    data = synthetic_splits(task, channels, classes, n=64)
    result = train_image_model(data, TrainConfig(**FAST, epochs=6, learning_rate=1e-2))
    assert result.epochs_run == 6
    assert result.network_config.num_classes == classes
    assert result.preprocess.channels == channels
    assert min(r.val_loss for r in result.history) < result.history[0].val_loss
    assert max(r.val_auc for r in result.history) > 0.8
    assert len(result.data_sha256) == 64


def _weights(network: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in network.state_dict().values()]


def test_same_seed_gives_identical_weights() -> None:
    data = synthetic_splits(TaskType.BINARY)
    config = TrainConfig(**FAST, epochs=2, seed=3)
    first = _weights(train_image_model(data, config).network)
    second = _weights(train_image_model(data, config).network)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


class _InterruptedError(Exception):
    pass


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_resume_from_checkpoint_matches_an_uninterrupted_run(
    tmp_path: Path, ema_decay: float | None
) -> None:
    data = synthetic_splits(TaskType.BINARY)
    config = TrainConfig(**FAST, epochs=3, seed=1, ema_decay=ema_decay)
    straight = train_image_model(data, config)

    def stop_after_two(record: EpochRecord, planned: int) -> None:
        if record.epoch == 2:
            raise _InterruptedError

    with pytest.raises(_InterruptedError):
        train_image_model(data, config, checkpoint_dir=tmp_path, progress=stop_after_two)
    resumed = train_image_model(data, config, checkpoint_dir=tmp_path)
    assert [r.epoch for r in resumed.history] == [1, 2, 3]
    assert resumed.best_epoch == straight.best_epoch
    for a, b in zip(_weights(resumed.network), _weights(straight.network), strict=True):
        torch.testing.assert_close(a, b)
    assert not list(tmp_path.glob("*.pt"))
    assert not list(tmp_path.glob("*.pkl"))


def test_early_stopping_and_time_budget() -> None:
    data = synthetic_splits(TaskType.BINARY)
    stopped = train_image_model(data, TrainConfig(**FAST, epochs=30, patience=1))
    assert stopped.stopped_because == "early stopping"
    assert stopped.epochs_run < 30
    budget = train_image_model(data, TrainConfig(**FAST, epochs=30, time_budget_minutes=1e-4))
    assert budget.stopped_because == "time budget"
    assert budget.epochs_run == 1


def test_empty_training_split_is_refused() -> None:
    data = synthetic_splits(TaskType.BINARY)
    with pytest.raises(ModelError, match="non-empty train"):
        train_image_model(data, TrainConfig(**FAST, train_subset=0))


@pytest.mark.parametrize("dataset", ["pneumoniamnist", "breastmnist"])
def test_short_run_on_real_medmnist(data_dir: Path, dataset: str) -> None:
    data = load_medmnist(data_dir, dataset)
    result = train_image_model(data, TrainConfig(**FAST, epochs=1, train_subset=128))
    assert result.epochs_run == 1
    assert 0.0 <= result.history[0].val_auc <= 1.0


def test_weight_average_is_what_gets_selected() -> None:
    data = synthetic_splits(TaskType.BINARY, n=64)
    plain = train_image_model(data, TrainConfig(**FAST, epochs=4, learning_rate=1e-2))
    averaged = train_image_model(
        data, TrainConfig(**FAST, epochs=4, learning_rate=1e-2, ema_decay=0.9)
    )
    assert max(r.val_auc for r in averaged.history) > 0.8
    different = [
        not torch.equal(a, b)
        for a, b in zip(_weights(plain.network), _weights(averaged.network), strict=True)
    ]
    assert any(different)
