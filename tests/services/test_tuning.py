"""Ray Tune search: the pieces without Ray (fast), and one small risk search (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from clinsight.errors import ModelError
from clinsight.imaging.specs import TrainConfig
from clinsight.sequence.training import SequenceTrainConfig
from clinsight.services.tuning import (
    SearchSettings,
    TrialSummary,
    best_trial,
    image_config,
    progression_config,
    risk_estimator,
    tune_progression,
    tune_risk,
)
from tests.support.progression import tiny_set


def _trial(auc: float, stopped: bool) -> TrialSummary:
    return TrialSummary({"auc": auc}, auc, 1 if stopped else 3, stopped)


def test_the_best_trial_is_chosen_among_those_that_ran_every_step() -> None:
    trials = [_trial(0.91, True), _trial(0.80, False), _trial(0.85, False)]
    assert best_trial(trials).val_auc == 0.85
    assert best_trial([_trial(0.7, True), _trial(0.9, True)]).val_auc == 0.9


def test_a_sampled_risk_configuration_builds_its_family() -> None:
    config = {"family": "gradient_boosting", "C": 1.0, "learning_rate": 0.1,
              "max_leaf_nodes": 8, "max_iter": 100, "l2_regularization": 1.0,
              "min_samples_leaf": 3, "max_features": "sqrt"}  # fmt: skip
    boosting = risk_estimator(config, seed=4)
    assert isinstance(boosting, HistGradientBoostingClassifier)
    assert (boosting.learning_rate, boosting.max_iter, boosting.random_state) == (0.1, 100, 4)
    assert isinstance(risk_estimator({**config, "family": "logistic"}), LogisticRegression)
    forest = risk_estimator({**config, "family": "random_forest"})
    assert isinstance(forest, RandomForestClassifier)
    assert forest.min_samples_leaf == 3
    with pytest.raises(ModelError, match="unknown risk model family 'svm'"):
        risk_estimator({**config, "family": "svm"})


def test_an_image_trial_runs_its_epochs_without_early_stopping() -> None:
    config = {"learning_rate": 1e-3, "weight_decay": 0.01, "width": 16, "batch_size": 32,
              "class_weighting": "none"}  # fmt: skip
    made = image_config(TrainConfig(seed=3, ensemble=3, time_budget_minutes=5), config, 6)
    assert (made.learning_rate, made.width, made.batch_size, made.epochs) == (1e-3, 16, 32, 6)
    assert (made.patience, made.min_epochs, made.ensemble, made.seed) == (6, 6, 1, 3)
    assert made.time_budget_minutes is None
    assert made.class_weighting == "none"


def test_a_progression_trial_runs_its_epochs_without_early_stopping() -> None:
    config = {"architecture": "lstm", "hidden": 32, "dropout": 0.2, "learning_rate": 1e-3,
              "weight_decay": 1e-3}  # fmt: skip
    made = progression_config(SequenceTrainConfig(seed=2, time_budget_minutes=5), config, 4)
    assert (made.architecture, made.hidden, made.dropout, made.epochs) == ("lstm", 32, 0.2, 4)
    assert (made.patience, made.min_epochs, made.seed, made.threads) == (4, 4, 2, 1)
    assert made.time_budget_minutes is None


@pytest.mark.slow
def test_a_small_progression_search_registers_its_best_trial(
    tmp_path: Path, data_dir: Path
) -> None:
    import ray

    from clinsight.registry.progression import REGISTRY

    folder, outcomes = tiny_set(data_dir, tmp_path, survivors=24, deaths=12)
    ray.init(address="local", num_cpus=1, object_store_memory=100 * 2**20,
             include_dashboard=False, log_to_driver=False)  # fmt: skip
    try:
        outcome = tune_progression(
            folder, outcomes, SequenceTrainConfig(), registry_dir=tmp_path / "reg",
            name="tuned", storage=tmp_path / "tune", search=SearchSettings(trials=2),
            epochs=2, bootstrap=10,
        )  # fmt: skip
    finally:
        ray.shutdown()
    assert len(outcome.trials) == 2
    assert outcome.best in outcome.trials
    assert [v.version for v in REGISTRY.versions(tmp_path / "reg", "tuned")] == [1]


@pytest.mark.slow
def test_a_small_risk_search_registers_its_best_trial(tmp_path: Path, data_dir: Path) -> None:
    import ray

    from clinsight.data.tabular import load_dataset
    from clinsight.registry.risk import REGISTRY

    ray.init(address="local", num_cpus=1, object_store_memory=100 * 2**20,
             include_dashboard=False, log_to_driver=False)  # fmt: skip
    try:
        outcome = tune_risk(
            load_dataset("wdbc", data_dir), registry_dir=tmp_path / "reg", name="wdbc-tuned",
            storage=tmp_path / "tune", search=SearchSettings(trials=3, workers=1),
            n_splits=3, n_repeats=2,
        )  # fmt: skip
    finally:
        ray.shutdown()
    assert len(outcome.trials) == 3
    assert outcome.best in outcome.trials
    assert all(0.5 < trial.val_auc <= 1.0 for trial in outcome.trials)
    version = outcome.registered.version  # type: ignore[union-attr]
    assert version is not None
    assert [v.version for v in REGISTRY.versions(tmp_path / "reg", "wdbc-tuned")] == [1]
