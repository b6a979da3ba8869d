"""The command line starts light and fails in one way: `import clinsight.cli` loads no heavy
library, and a deliberate error becomes one message and exit status 2 in every way it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clinsight.imaging.networks import ARCHITECTURES
from clinsight.imaging.specs import ARCHITECTURE_NAMES

HEAVY = (
    "torch", "monai", "sklearn", "sksurv", "spacy", "fastapi", "pandas", "matplotlib",
    "transformers",
)  # fmt: skip


def test_importing_the_cli_loads_no_heavy_library() -> None:
    probe = (
        "import json, sys, clinsight.cli; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_python_dash_m_turns_an_error_into_one_message_and_status_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "clinsight", "models", "show", "image", "nothing"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("Error: No model named 'nothing'")
    assert "Traceback" not in done.stderr


def test_the_architecture_names_are_those_the_networks_build() -> None:
    assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES


def test_serve_under_nohup_prints_progress_lines_and_the_password_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Not on a terminal (a log file), start-up says what it does epoch by epoch, and the
    generated admin password stands on a line of its own, unwrapped."""
    import clinsight.serve as serve_module
    import clinsight.services.bootstrap as bootstrap_module
    from clinsight.cli import app
    from clinsight.cli import output as cli_output
    from clinsight.imaging.training import EpochRecord
    from clinsight.services.bootstrap import BootstrapResult

    password = "x" * 90  # longer than a default 80-column console
    seen: list[str] = []

    def fake_bootstrap(settings: object, *, train_model: bool, progress: Any) -> BootstrapResult:
        for epoch in (1, 2):
            progress(EpochRecord(epoch, 0.5, 0.4, 0.9, 1e-3, 12.0), 2)
        return BootstrapResult(None, password, tmp_path / "c", tmp_path / "k", "m:1")  # type: ignore[arg-type]

    monkeypatch.setattr(bootstrap_module, "bootstrap", fake_bootstrap)
    monkeypatch.setattr(serve_module, "run_server", lambda *a: seen.append("served"))
    monkeypatch.setattr(cli_output.console, "width", 80)
    done = CliRunner().invoke(app, ["serve"])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert "Training the default model: epoch 2 of 2 (validation AUC 0.900, 12 s)" in lines
    assert password in lines  # alone on its line
    assert seen == ["served"]
