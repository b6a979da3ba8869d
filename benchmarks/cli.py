"""Command-line start-up benchmark: wall time of `clinsight --help` and of `clinsight users create`.

Each command runs as a fresh `python -m clinsight` subprocess of this interpreter (one warm-up
run, then the median of 5): `--help` (`help_seconds`), and `users create <new name> --role
clinician --password ...` on a fresh CLINSIGHT_HOME each time (`users_create_seconds`: start-up,
schema creation, Argon2 hashing, commit). `--baseline PATH` also measures the source tree at PATH
(e.g. a `git worktree` of an older revision) and records it as `baseline`; without it, the
baseline already in the results file is kept.

Run: ``.venv/bin/python benchmarks/cli.py [--baseline /path/to/old/worktree]``.
Writes ``benchmarks/results/cli.json``, the ``cli`` section of ``benchmarks/README.md``,
and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, read_results, update_readme_section, write_results

REPO = Path(__file__).resolve().parents[1]
RUNS = 5
PASSWORD = "correct horse battery staple"


def _revision(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()


def _seconds(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "clinsight", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


def _median(tree: Path, command: list[str], fresh_home: bool) -> float:
    times = []
    for run in range(RUNS + 1):  # run 0 warms the file cache and is not counted
        with tempfile.TemporaryDirectory() as home:
            env = os.environ | {"PYTHONPATH": str(tree / "src"), "CLINSIGHT_HOME": home,
                                "CLINSIGHT_ALLOW_DOWNLOAD": "0"}  # fmt: skip
            args = [a.replace("{run}", str(run)) for a in command] if fresh_home else command
            seconds = _seconds(args, env)
        if run:
            times.append(seconds)
    return statistics.median(times)


def measure(tree: Path) -> dict[str, Any]:
    """Median wall times of the two commands with the `clinsight` package of `tree`."""
    users = ["users", "create", "user{run}", "--role", "clinician", "--password", PASSWORD]
    return {
        "revision": _revision(tree),
        "help_seconds": round(_median(tree, ["--help"], fresh_home=False), 3),
        "users_create_seconds": round(_median(tree, users, fresh_home=True), 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def readme_section(results: dict[str, Any]) -> str:
    """The Markdown table of README.md: baseline and this tree side by side."""
    lines = [
        "## Command line start-up",
        "",
        f"Median of {RUNS} runs of `python -m clinsight ...` (fresh process, fresh "
        f"CLINSIGHT_HOME for `users create`), {results['machine']['cpu']}, "
        f"{results['machine']['cores']} cores (shared: see the load average).",
        "",
        "| tree | `clinsight --help` (s) | `clinsight users create` (s) | load avg |",
        "|---|---|---|---|",
    ]
    rows = [("baseline", results.get("baseline")), ("this tree", results)]
    for label, row in rows:
        if row:
            times = f"{row['help_seconds']:.2f} | {row['users_create_seconds']:.2f}"
            lines.append(f"| {label} ({row['revision']}) | {times} | {row['load_average_1min']} |")
    return "\n".join(lines)


def main() -> None:
    """Measure this tree (and a baseline tree if given), write JSON and the README table."""
    parser = argparse.ArgumentParser(description="Command-line start-up benchmark.")
    parser.add_argument("--baseline", type=Path, help="Source tree of the revision to compare.")
    options = parser.parse_args()
    results = measure(REPO) | {"machine": machine(), "runs": RUNS}
    baseline = (
        measure(options.baseline) if options.baseline else read_results("cli").get("baseline")
    )
    if baseline:
        results["baseline"] = baseline
    write_results("cli", results)
    update_readme_section("cli", readme_section(results))
    sys.stdout.write(readme_section(results) + "\n")


if __name__ == "__main__":
    main()
