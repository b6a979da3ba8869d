"""The training loop: every task type, determinism, resume, time budget, ensembles, real data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from clinsight.data.medmnist import MedMNISTSplits, Split, TaskType, load_medmnist
from clinsight.errors import ModelError
from clinsight.imaging.networks import Ensemble
from clinsight.imaging.specs import AugmentSpec, TrainConfig
from clinsight.imaging.training import (
    EpochRecord,
    class_weights,
    member_seed,
    predict_logits,
    train_image_model,
)
from clinsight.imaging.transforms import Preprocess
from tests.support.synthetic import synthetic_splits

MILD = AugmentSpec(rotate_degrees=5, scale=0.05, translate=0.05, contrast_gamma=0.1, intensity=0.05)
FAST = TrainConfig(
    architecture="cnn",
    width=4,
    batch_size=16,
    threads=1,
    augment=MILD,
    label_smoothing=0.0,
    class_weighting="inverse",
)


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
    result = train_image_model(data, replace(FAST, epochs=6, learning_rate=1e-2))
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
    config = replace(FAST, epochs=2, seed=3)
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
    config = replace(FAST, epochs=3, seed=1, ema_decay=ema_decay)
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
    no_floor = replace(FAST, min_epochs=0, min_epochs_fraction=0.0, patience_fraction=0.0)
    stopped = train_image_model(data, replace(no_floor, epochs=30, patience=1))
    assert stopped.stopped_because == "early stopping"
    assert stopped.epochs_run < 30
    budget = train_image_model(data, replace(FAST, epochs=30, time_budget_minutes=1e-4))
    assert budget.stopped_because == "time budget"
    assert budget.epochs_run == 1


def test_empty_training_split_is_refused() -> None:
    data = synthetic_splits(TaskType.BINARY)
    with pytest.raises(ModelError, match="non-empty train"):
        train_image_model(data, replace(FAST, train_subset=0))


@pytest.mark.parametrize("dataset", ["pneumoniamnist", "breastmnist"])
def test_short_run_on_real_medmnist(data_dir: Path, dataset: str) -> None:
    data = load_medmnist(data_dir, dataset)
    result = train_image_model(data, replace(FAST, epochs=1, train_subset=128))
    assert result.epochs_run == 1
    assert 0.0 <= result.history[0].val_auc <= 1.0


def test_weight_average_is_what_gets_selected() -> None:
    data = synthetic_splits(TaskType.BINARY, n=64)
    plain = train_image_model(data, replace(FAST, epochs=4, learning_rate=1e-2))
    averaged = train_image_model(data, replace(FAST, epochs=4, learning_rate=1e-2, ema_decay=0.9))
    assert max(r.val_auc for r in averaged.history) > 0.8
    different = [
        not torch.equal(a, b)
        for a, b in zip(_weights(plain.network), _weights(averaged.network), strict=True)
    ]
    assert any(different)


def test_ensemble_trains_independent_members_and_averages_their_logits() -> None:
    data = synthetic_splits(TaskType.BINARY, n=64)
    config = replace(FAST, epochs=3, seed=2, learning_rate=1e-2)
    single = train_image_model(data, config)
    result = train_image_model(data, replace(config, ensemble=2))
    network = result.network
    assert isinstance(network, Ensemble)
    assert result.network_config.members == 2
    assert [m.seed for m in result.members] == [2, member_seed(2, 1)] == [2, 10_002]
    assert [(r.member, r.epoch) for r in result.history] == [
        (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3),
    ]  # fmt: skip
    assert result.epochs_run == 6
    assert result.seconds == pytest.approx(sum(m.seconds for m in result.members))
    # Member 0 is exactly the single network of the same seed; member 1 differs.
    first, second = network.members
    assert all(map(torch.equal, _weights(first), _weights(single.network)))
    assert not all(map(torch.equal, _weights(first), _weights(second)))
    inputs = torch.rand(6, 1, 28, 28)
    members = [predict_logits(member, inputs) for member in network.members]
    np.testing.assert_allclose(predict_logits(network, inputs), np.mean(members, axis=0),
                               rtol=0, atol=1e-6)  # fmt: skip
    # The recorded validation AUC is the ensemble's own, not a member's.
    assert single.val_auc == single.members[0].best_val_auc
    images, labels = data.split(Split.VAL)
    val_logits = predict_logits(
        network, torch.from_numpy(Preprocess(result.preprocess).batch(images))
    )
    expected = roc_auc_score(labels[:, 0], torch.softmax(torch.from_numpy(val_logits), 1)[:, 1])
    assert result.val_auc == pytest.approx(expected)


def test_ensemble_members_split_the_time_budget() -> None:
    data = synthetic_splits(TaskType.BINARY)
    result = train_image_model(data, replace(FAST, epochs=30, time_budget_minutes=1e-4, ensemble=3))
    assert [m.epochs_run for m in result.members] == [1, 1, 1]
    assert result.stopped_because == "time budget"
    assert result.epochs_run == 3


def test_ensemble_resumes_each_member_from_its_checkpoint(tmp_path: Path) -> None:
    data = synthetic_splits(TaskType.BINARY)
    config = replace(FAST, epochs=2, seed=1, ema_decay=0.9, ensemble=2)
    straight = train_image_model(data, config)

    def stop_in_second_member(record: EpochRecord, planned: int) -> None:
        if record.member == 1 and record.epoch == 1:
            raise _InterruptedError

    with pytest.raises(_InterruptedError):
        train_image_model(data, config, checkpoint_dir=tmp_path, progress=stop_in_second_member)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["member-0", "member-1"]
    seen: list[tuple[int, int]] = []
    resumed = train_image_model(
        data,
        config,
        checkpoint_dir=tmp_path,
        progress=lambda r, _p: seen.append((r.member, r.epoch)),
    )
    assert seen == [(1, 2)]
    assert [(r.member, r.epoch) for r in resumed.history] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert resumed.members[0].best_epoch == straight.members[0].best_epoch
    for a, b in zip(_weights(resumed.network), _weights(straight.network), strict=True):
        torch.testing.assert_close(a, b)


def test_ensemble_of_no_networks_is_refused() -> None:
    data = synthetic_splits(TaskType.BINARY)
    with pytest.raises(ModelError, match="ensemble must be 1 or more networks; got 0"):
        train_image_model(data, replace(FAST, ensemble=0))


def test_class_weights_of_each_scheme() -> None:
    labels = np.array([[0]] * 6 + [[1]] * 2)
    np.testing.assert_allclose(class_weights(labels, 2, "none"), [1.0, 1.0])
    np.testing.assert_allclose(class_weights(labels, 2, "inverse"), [8 / 12, 8 / 4])
    effective = (1 - 0.999) / (1 - 0.999 ** np.array([6.0, 2.0]))
    np.testing.assert_allclose(
        class_weights(labels, 2, "effective"), 2 * effective / effective.sum()
    )
    with pytest.raises(ModelError, match="Unknown class weighting 'auto'"):
        class_weights(labels, 2, "auto")


def _imbalanced(data: MedMNISTSplits, keep_every: int) -> MedMNISTSplits:
    """The training split with only every `keep_every`-th case of class 1 kept."""
    images, labels = data.split(Split.TRAIN)
    ones = np.flatnonzero(labels[:, 0] == 1)
    keep = np.sort(np.r_[np.flatnonzero(labels[:, 0] == 0), ones[::keep_every]])
    return replace(
        data, images={**data.images, Split.TRAIN: images[keep]},
        labels={**data.labels, Split.TRAIN: labels[keep]},
    )  # fmt: skip


def test_auto_class_weighting_pilots_every_scheme_on_an_imbalanced_split() -> None:
    data = _imbalanced(synthetic_splits(TaskType.BINARY, n=64), keep_every=4)
    config = replace(FAST, epochs=2, class_weighting="auto", pilot_epochs=1)
    result = train_image_model(data, config)
    choice = result.class_weighting
    assert choice["imbalance_ratio"] == 4.0
    assert set(choice["validation_auc"]) == {"none", "inverse", "effective"}
    aucs = choice["validation_auc"]
    assert aucs[choice["scheme"]] == max(aucs.values())
    assert choice["pilot_epochs"] == 1
    assert result.epochs_run == 2  # the pilots are not part of the run's history


def test_auto_class_weighting_of_a_balanced_split_is_none_without_pilots() -> None:
    data = synthetic_splits(TaskType.BINARY)
    result = train_image_model(data, replace(FAST, epochs=1, class_weighting="auto"))
    assert result.class_weighting["scheme"] == "none"
    assert "validation_auc" not in result.class_weighting
