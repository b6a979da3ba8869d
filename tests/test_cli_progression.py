"""`clinsight progression train | evaluate | predict` on a few real stays of set A."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from clinsight.cli import app
from tests.support.progression import set_a, tiny_set

runner = CliRunner()


def test_train_evaluate_predict(data_dir: Path, tmp_path: Path) -> None:
    folder, outcomes = tiny_set(data_dir, tmp_path)
    trained = runner.invoke(app, [
        "progression", "train", "--set", str(folder), "--name", "tiny", "--hidden", "8",
        "--epochs", "1", "--bootstrap", "10",
    ])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "tiny v1 (candidate) on validation" in trained.output
    scored = runner.invoke(app, [
        "progression", "evaluate", "--name", "tiny", "--set", str(folder),
        "--outcomes", str(outcomes), "--bootstrap", "10", "--json",
    ])  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["n"] == 36
    stays, _ = set_a(data_dir)
    predicted = runner.invoke(
        app, ["progression", "predict", "--name", "tiny", "--stay", str(stays / "132539.txt")]
    )
    assert predicted.exit_code == 0, predicted.output
    assert "Risk of in-hospital death" in predicted.output
    assert "integrated gradients" in predicted.output


def test_a_missing_outcomes_file_is_a_message(tmp_path: Path) -> None:
    folder = tmp_path / "set-q"
    folder.mkdir()
    result = runner.invoke(app, ["progression", "train", "--set", str(folder)])
    assert result.exit_code != 0
    assert "Outcomes-q.txt is missing" in result.output
