"""Web UI benchmark: every page template checked in Debian's Chromium, and the time from
starting the service on a fresh HOME to a clinician's first diagnosis in the browser.

Two parts, both scripted with Playwright:

- `pages`: runs the browser test `tests/e2e/test_pages_browser.py` (the one page-visiting
  code, in `tests/support/pages.py`), which writes its findings to
  `test-artifacts/e2e/pages-report.json`: per page template, axe-core serious or critical
  violations, horizontal overflow at 390 px, raw JSON bodies and broken images.
- `first-diagnosis`: `clinsight serve` on an empty HOME with the data directory given (the
  step `make run` takes once its virtualenv exists: the existing venv is reused, creating
  one is the install step and is not timed), then in the browser: log in as admin with the
  printed password, create a clinician, log in as them, create a patient, upload a chest
  radiograph (the one full-size NIH ChestX-ray14 PNG, not from the model's own data set)
  and wait for the finding.

    .venv/bin/python benchmarks/ui.py                       # both parts
    .venv/bin/python benchmarks/ui.py --part pages
    .venv/bin/python benchmarks/ui.py --part first-diagnosis
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from clinsight.services.bootstrap import BOOTSTRAP_CONFIG, first_run_limitation
from common import read_results, update_readme_section, write_results

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
REPORT = ROOT / "test-artifacts" / "e2e" / "pages-report.json"
SHOTS = ROOT / "test-artifacts" / "ui-benchmark"
TARGET_SECONDS = 300
FIRST_RUN_HISTORY = (
    "2026-12-04, the quick first-run recipe (commit 7636cc6), 1-minute load average 4.3 to "
    "8.9 (mean 6.6) from other sessions: 593.0 s (listening after 582.6 s; 4 epochs of 200, "
    "101, 67 and 91 s, validation AUC 0.992), goal missed under that load. "
    "With the former first-run recipe (ResNet-18 width 24, 4 epochs), 2026-12-03, commit "
    "3f94a19, this project's shared 2-core machine (Intel Xeon), load average 15-19 "
    "from other sessions' work throughout: `clinsight serve` on an empty HOME "
    "was stopped after 41 minutes, still training the default model: epoch 1 of 4 took "
    "917 s and epoch 2 1371 s wall (validation AUC 0.986 and 0.985); the service process "
    "had used 569 CPU seconds by then. The README's 312 s for the whole first run was "
    "measured at load average about 3. No first diagnosis was reached, so "
    "first_diagnosis_seconds is not measured here; the script times it on a machine "
    "that can spare the cores (`--part first-diagnosis`)."
)
SERVE_LIMIT_S = 3600
CLINICIAN_PASSWORD = "first diagnosis 1"


def _data_dir() -> Path:
    given = os.environ.get("CLINSIGHT_DATA_DIR")
    return Path(given) if given else ROOT.parent / "shared" / "data"


def run_pages() -> dict[str, Any]:
    """The browser test over every page template; its report, and whether it passed."""
    REPORT.unlink(missing_ok=True)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/e2e/test_pages_browser.py", "-q", "-p",
         "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if not REPORT.exists():
        raise SystemExit(f"the page test wrote no report:\n{done.stdout[-4000:]}")
    report: dict[str, Any] = json.loads(REPORT.read_text())
    pages = report["pages"]
    reached = {p["template"] for p in pages}
    return {
        "pages_checked": [t for t in report["templates"] if t in reached],
        "other_pages_checked": sorted(reached - set(report["templates"])),
        "templates": report["templates"],
        "templates_not_covered": report["not_covered"],
        "axe_serious_or_critical": sum(len(p["axe"]) for p in pages),
        "overflow_at_390px": sum(1 for p in pages if p["overflow"]),
        "raw_json_pages": sum(1 for p in pages if p["raw_json"]),
        "broken_images": sum(len(p["broken_images"]) for p in pages),
        "visits": len(pages),
        "test_passed": done.returncode == 0,
        "test_output_tail": None if done.returncode == 0 else done.stdout[-3000:],
        "seconds": round(time.monotonic() - started, 1),
        "per_page": pages,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Log:
    """The service's output, read on a thread: every line with its time, and the first
    match of each pattern waited for."""

    def __init__(self, process: subprocess.Popen[str], started: float) -> None:
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._process = process
        self._started = started
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self.lines.append((time.monotonic() - self._started, line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, limit: float) -> tuple[int, re.Match[str]]:
        deadline = time.monotonic() + limit
        seen = 0
        with self._changed:
            while True:
                for index in range(seen, len(self.lines)):
                    found = re.search(pattern, self.lines[index][1])
                    if found:
                        return index, found
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self._process.poll() is not None:
                    tail = "\n".join(text for _, text in self.lines[-30:])
                    raise SystemExit(f"the service never printed {pattern!r}:\n{tail}")
                self._changed.wait(min(left, 1.0))


def _browser_diagnosis(url: str, admin_password: str, image: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    marks: dict[str, float] = {}
    begun = time.monotonic()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.goto(f"{url}login")
        page.fill("#username", "admin")
        page.fill("#password", admin_password)
        page.click("#login")
        page.wait_for_url("**/models", timeout=120_000)
        page.click("text=Users")
        page.fill("#new-username", "doctor")
        page.fill("#new-password", CLINICIAN_PASSWORD)
        page.select_option("#new-role", "clinician")
        page.click("#create-user-button")
        page.wait_for_selector("#admin-notice", timeout=120_000)
        page.click("#logout")
        page.wait_for_url("**/login**")
        marks["admin_done"] = time.monotonic() - begun
        page.fill("#username", "doctor")
        page.fill("#password", CLINICIAN_PASSWORD)
        page.click("#login")
        page.wait_for_url("**/patients", timeout=120_000)
        page.fill("#mrn", "FIRST-1")
        page.fill("#name", "First Patient")
        page.fill("#birth_date", "1961-04-12")
        page.select_option("#sex", "male")
        page.click("#create-patient")
        page.wait_for_selector("#upload", timeout=120_000)
        page.set_input_files("#file", str(image))
        page.click("#upload")
        page.wait_for_selector("#headline", timeout=300_000)
        headline = page.inner_text("#headline")
        marks["finding_shown"] = time.monotonic() - begun
        page.screenshot(path=str(SHOTS / "first-diagnosis.png"), full_page=True)
        browser.close()
    return {"headline": headline, "browser_seconds": marks}


def _wait_until_answering(port: int, process: subprocess.Popen[str], limit: float) -> None:
    """Poll the login page until a worker answers (any HTTP status)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the self-signed one
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/login", context=context,
                                        timeout=10):  # fmt: skip
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the service did not answer on port {port} within {limit:.0f} s")


class _LoadSampler:
    """The 1-minute load average every `every` seconds on a thread, until `stop`."""

    def __init__(self, every: float = 10.0) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._done = threading.Event()
        self._every = every
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._done.wait(self._every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict[str, float]:
        self._done.set()
        values = [*self.samples, os.getloadavg()[0]]
        return {"min": min(values), "mean": round(sum(values) / len(values), 2),
                "max": max(values), "samples": len(values)}  # fmt: skip


def run_first_diagnosis(data_dir: Path) -> dict[str, Any]:
    """Seconds from starting `clinsight serve` on an empty HOME to the finding in the
    browser, with the service's own milestones (from its output) and the machine's load."""
    image = data_dir / "chestxray14" / "images" / "full_1024" / "00000001_000.png"
    home = Path(tempfile.mkdtemp(prefix="clinsight-first-run-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINSIGHT_")}
    env |= {"CLINSIGHT_HOME": str(home), "CLINSIGHT_DATA_DIR": str(data_dir),
            "CLINSIGHT_ALLOW_DOWNLOAD": "0", "CLINSIGHT_PORT": str(port),
            "PYTHONUNBUFFERED": "1"}  # fmt: skip
    command = [str(Path(sys.executable).parent / "clinsight"), "serve"]
    load_at_start = os.getloadavg()
    load = _LoadSampler()
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        log = _Log(process, started)
        index, _ = log.wait_for(r"password is on the next line", SERVE_LIMIT_S)
        log.wait_for(r"^Open https://", SERVE_LIMIT_S)
        password = log.lines[index + 1][1].strip()
        log.wait_for(r"Uvicorn running on", 300)
        _wait_until_answering(port, process, 600)  # the workers start after the parent binds
        listening = time.monotonic() - started
        browser = _browser_diagnosis(f"https://localhost:{port}/", password, image)
        total = time.monotonic() - started
    finally:
        load_during = load.stop()
        os.killpg(process.pid, signal.SIGTERM)  # the service and its workers, started here
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)  # the first-run HOME made here
    epochs = [(t, text) for t, text in log.lines if text.startswith("Training the default")]
    return {
        "first_diagnosis_seconds": round(total, 1),
        "first_diagnosis_target_seconds": TARGET_SECONDS,
        "first_diagnosis_met": total <= TARGET_SECONDS,
        "service_listening_seconds": round(listening, 1),
        "training_log": [f"{t:.0f} s: {text}" for t, text in epochs],
        "browser_steps_seconds": {k: round(v, 1) for k, v in browser["browser_seconds"].items()},
        "finding_headline": browser["headline"],
        "first_diagnosis_command": " ".join([*command]) + " (fresh HOME, CLINSIGHT_DATA_DIR set)",
        "first_diagnosis_venv": (
            "existing virtualenv reused: `make run` = create .venv + pip install (not timed) + "
            "`clinsight serve` (timed)"
        ),
        "first_run_recipe": first_run_limitation(BOOTSTRAP_CONFIG, "pneumoniamnist"),
        "load_average_at_start": load_at_start,
        "load_average_1min_during": load_during,
        "load_average_at_end": os.getloadavg(),
    }


def _table(results: dict[str, Any]) -> str:
    rows = [
        ("page templates checked (of all in web/templates)",
         f"{len(results.get('pages_checked', []))} of {len(results.get('templates', []))}",
         "every template"),
        ("other pages checked", ", ".join(results.get("other_pages_checked", [])) or "none", ""),
        ("axe-core serious or critical violations", results.get("axe_serious_or_critical"), "0"),
        ("pages overflowing at 390 px", results.get("overflow_at_390px"), "0"),
        ("raw JSON pages", results.get("raw_json_pages"), "0"),
        ("broken images", results.get("broken_images"), "0"),
        ("first diagnosis, s (fresh HOME, `clinsight serve` → finding in the browser)",
         results.get("first_diagnosis_seconds"), f"<= {TARGET_SECONDS}"),
    ]  # fmt: skip
    lines = [
        "## Web UI",
        "",
        "`benchmarks/ui.py`: the browser test `tests/e2e/test_pages_browser.py` in Debian's "
        "Chromium visits every page template at 1280 px and 390 px and injects axe-core "
        "4.14.1; the first diagnosis is timed from starting `clinsight serve` on an empty "
        "HOME (the existing virtualenv reused: creating it is `make run`'s install step, "
        "not timed) to the finding on the result page, scripted with Playwright (admin "
        "login with the printed password, a clinician created, a patient, an upload).",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        *[f"| {name} | {'not measured' if v is None else v} | {goal} |" for name, v, goal in rows],
    ]
    lines += ["", f"Earlier first-run measurements: {FIRST_RUN_HISTORY}"]
    if "service_listening_seconds" in results:
        during = results["load_average_1min_during"]
        lines += [
            "",
            f"Of the first diagnosis, the service was listening after "
            f"{results['service_listening_seconds']} s (store, keys, admin, certificate, "
            f"training the quick first-run model: {len(results['training_log'])} epochs of "
            + ", ".join(line.rsplit(", ", 1)[-1].rstrip(")") for line in results["training_log"])
            + "); the rest is the browser steps. The 1-minute load average during the run: "
            f"{during['min']:.1f} to {during['max']:.1f} (mean {during['mean']:.1f}) on "
            f"{os.cpu_count()} cores, from other sessions' work. Finding shown: "
            f"“{results['finding_headline']}”.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "pages", "first-diagnosis"], default="all")
    args = parser.parse_args()
    results = {k: v for k, v in read_results("ui").items() if k != "provenance"}
    if args.part in ("all", "pages"):
        results |= run_pages()
    if args.part in ("all", "first-diagnosis"):
        results |= run_first_diagnosis(_data_dir())
    results.setdefault("first_diagnosis_seconds", None)
    results.setdefault("first_diagnosis_target_seconds", TARGET_SECONDS)
    results["first_diagnosis_history"] = FIRST_RUN_HISTORY
    write_results("ui", results)
    update_readme_section("ui", _table(results))
    print(_table(results))


if __name__ == "__main__":
    main()
