"""Shared plumbing of the benchmark scripts: results JSON and the tables in README.md.

Every results file carries a `provenance` block (git revision and dirty flag, command
line, machine), added by `write_results`, so a figure can be traced to the code and the
run that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from clinsight.files import write_text_atomic

__all__ = [
    "RESULTS", "machine", "provenance", "read_results", "update_readme_section", "write_results",
]  # fmt: skip

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
README = BENCH / "README.md"


def machine() -> dict[str, Any]:
    """The facts that make a timing comparable: CPU, cores, library versions, time."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=BENCH, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def provenance() -> dict[str, Any]:
    """Where a result comes from: git revision (None outside a checkout) and whether the
    working tree had uncommitted changes, the command line, and the machine."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_revision": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "command": [sys.executable, *sys.argv],
        "machine": machine(),
    }


def read_results(name: str) -> dict[str, Any]:
    """The current results file of a benchmark (empty if none yet)."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write `benchmarks/results/<name>.json` (pretty, stable key order, durable and atomic)
    with a fresh `provenance` block (see `provenance`) beside `data`."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {**data, "provenance": provenance()}
    write_text_atomic(path, json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    return path


def update_readme_section(name: str, markdown: str) -> None:
    """Replace the block between `<!-- name:start -->` and `<!-- name:end -->` in README.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    write_text_atomic(README, text)
