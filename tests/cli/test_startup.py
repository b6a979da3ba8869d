"""The command line starts light and fails in one way: `import clinsight.cli` loads no heavy
library, and a deliberate error becomes one message and exit status 2 in every way it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
