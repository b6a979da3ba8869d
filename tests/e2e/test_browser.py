"""Headless Chromium drives the real HTTPS server: login → patient → upload DICOM → result."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from clinsight.app import create_app
from clinsight.config import Settings
from clinsight.services.bootstrap import bootstrap
from tests.api.conftest import PASSWORD, settings, tiny_registry

__all__ = ["settings", "tiny_registry"]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """The bootstrapped service over HTTPS on a free loopback port."""
    from clinsight.security.records import create_user
    from clinsight.store.db import session_factory
    from clinsight.store.tables import Role

    result = bootstrap(settings)
    with session_factory(result.engine)() as session:
        create_user(session, settings, username="alice", password=PASSWORD,
                    role=Role.CLINICIAN, actor=None)  # fmt: skip
        session.commit()
    port = _free_port()
    config = uvicorn.Config(create_app(settings, engine=result.engine), host="127.0.0.1",
                            port=port, ssl_certfile=str(result.certificate),
                            ssl_keyfile=str(result.private_key), log_level="warning")  # fmt: skip
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started, "the server did not start within 20 s"
    yield f"https://localhost:{port}"
    instance.should_exit = True
    thread.join(10)
    result.engine.dispose()


def test_clinician_gets_a_diagnosis_in_the_browser(server: str, data_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dicom = data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.goto(f"{server}/login")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.screenshot(path=str(ARTIFACTS / "1-login.png"))
        page.click("#login")
        page.wait_for_url("**/patients")
        page.fill("#mrn", "E2E-1")
        page.fill("#name", "Grace Hopper")
        page.fill("#birth_date", "1950-12-09")
        page.click("#create-patient")
        page.wait_for_selector("text=No studies yet.")
        page.screenshot(path=str(ARTIFACTS / "2-patient.png"))
        page.set_input_files("#file", str(dicom))
        page.click("#upload")
        page.wait_for_selector("#overlay", timeout=60_000)
        label = page.inner_text("#label")
        probability = page.inner_text("#probability")
        warnings = page.locator(".warning").all_inner_texts()
        page.screenshot(path=str(ARTIFACTS / "3-result.png"), full_page=True)
        page.click("#agree")
        page.wait_for_selector("text=Feedback recorded: agree.")
        loaded = page.evaluate("document.getElementById('overlay').naturalWidth")
        browser.close()
    assert label in {"malignant", "normal, benign"}
    assert probability.endswith("%")
    # The test model reads breast ultrasound: a chest radiograph is flagged on the page.
    assert [w.split(",")[0] for w in warnings] == [
        "The image is modality CR",
        "The image shows body part CHEST",
    ]
    assert loaded > 0
