"""`clinsight survival`: train and register, evaluate, predict (table and FHIR), refusals."""

from __future__ import annotations

import json

from clinsight.config import get_settings
from clinsight.registry.stages import Stage
from clinsight.registry.survival import get_survival_model, load_survival_model
from tests.support.cli import run_cli, wide_console

__all__ = ["wide_console"]  # the autouse fixture: a wide terminal

VALUES = ("age=50", "estrec=30", "horTh=no", "menostat=Post", "pnodes=5", "progrec=30",
          "tgrade=II", "tsize=25")  # fmt: skip


def test_train_evaluate_predict_and_refuse() -> None:
    code, out = run_cli(
        "survival", "train", "--dataset", "gbsg2", "--name", "gbsg2", "--candidates", "cox",
        "--folds", "3", "--repeats", "1", "--band-refits", "2", "--bootstrap", "20",
        "--production",
    )  # fmt: skip
    assert code == 0, out
    assert "gbsg2 v1 (production)" in out
    assert "Chosen: cox." in out
    version = get_survival_model(get_settings().resolved_registry_dir, "gbsg2", 1)
    assert version.stage is Stage.PRODUCTION
    code, out = run_cli("models", "list", "--kind", "survival")
    assert code == 0
    assert "│ survival │ gbsg2 │ 1       │ production │ CV Uno C 0.6" in out
    code, out = run_cli("survival", "evaluate", "--name", "gbsg2")
    assert code == 0, out
    assert "686 patients, 299 events (recurrence or death), censoring 56%" in out
    assert "Proportional hazards (global p = " in out
    args = [a for v in VALUES for a in ("--value", v)]
    code, out = run_cli("survival", "predict", "--name", "gbsg2", *args)
    assert code == 0, out
    assert "│ 5 years │" in out
    assert "│ pnodes " in out
    code, out = run_cli("survival", "predict", "--name", "gbsg2", *args, "--json")
    assert code == 0, out
    resource = json.loads(out)
    assert [p["whenRange"]["high"]["value"] for p in resource["prediction"]] == [1, 3, 5]
    code, out = run_cli("survival", "predict", "--name", "gbsg2", *args, "--horizon", "10")
    assert code == 2
    assert "the longest supported horizon is 6.0 years (2195 days)" in out


def test_train_a_named_variant_and_predict_from_its_artifact() -> None:
    code, out = run_cli(
        "survival", "train", "--dataset", "gbsg2", "--name", "gbsg2log", "--candidates",
        "cox_log1p", "--folds", "2", "--repeats", "1", "--band-refits", "2", "--bootstrap", "0",
    )  # fmt: skip
    assert code == 0, out
    assert "Chosen: cox_log1p." in out
    version = get_survival_model(get_settings().resolved_registry_dir, "gbsg2log", 1)
    assert load_survival_model(version).skewed == "log1p"  # loads with the trusted types
    args = [a for v in VALUES for a in ("--value", v)]
    code, out = run_cli("survival", "predict", "--name", "gbsg2log", *args, "--version", "1")
    assert code == 0, out
    assert "│ 5 years │" in out


def test_the_default_candidates_are_the_services_grid() -> None:
    from clinsight.cli.survival import CANDIDATES
    from clinsight.tabular.survival import DEFAULT_SURVIVAL_CANDIDATES

    assert CANDIDATES.split(",") == list(DEFAULT_SURVIVAL_CANDIDATES)
