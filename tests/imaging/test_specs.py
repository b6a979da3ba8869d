"""Early stopping in proportion to the run: the epoch floor and the patience."""

from __future__ import annotations

from clinsight.imaging.specs import TrainConfig, early_stop_due, epoch_floor, patience_epochs

DEFAULT = TrainConfig()  # patience 10 / 25 %, floor 5 epochs / 30 %


def test_floor_and_patience_grow_with_the_planned_epochs() -> None:
    assert (epoch_floor(DEFAULT, 10), patience_epochs(DEFAULT, 10)) == (5, 10)
    assert (epoch_floor(DEFAULT, 40), patience_epochs(DEFAULT, 40)) == (12, 10)
    assert (epoch_floor(DEFAULT, 100), patience_epochs(DEFAULT, 100)) == (30, 25)


def test_no_early_stop_before_the_epoch_floor() -> None:
    # 100 planned epochs, best at epoch 1: 28 epochs without progress is past the patience
    # of 25 but below the floor of 30 epochs.
    assert not early_stop_due(DEFAULT, 29, 1, 100)
    assert early_stop_due(DEFAULT, 30, 1, 100)
    assert not early_stop_due(DEFAULT, 30, 6, 100)  # 24 epochs since the best one
    assert early_stop_due(DEFAULT, 31, 6, 100)


def test_no_early_stop_before_30_percent_of_the_time_budget() -> None:
    # A 10-minute budget: at 1.1 minutes nothing stops the run, whatever the epochs say.
    assert not early_stop_due(DEFAULT, 40, 1, 40, elapsed_s=66.0, budget_s=600.0)
    assert not early_stop_due(DEFAULT, 40, 1, 40, elapsed_s=179.0, budget_s=600.0)
    assert early_stop_due(DEFAULT, 40, 1, 40, elapsed_s=180.0, budget_s=600.0)


def test_the_former_rule_is_a_configuration_away() -> None:
    former = TrainConfig(patience=3, patience_fraction=0.0, min_epochs=0, min_epochs_fraction=0.0)
    assert early_stop_due(former, 4, 1, 100)
    assert not early_stop_due(former, 3, 1, 100)
