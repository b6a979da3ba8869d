"""Every page template of the web UI in headless Chromium: axe-core finds no serious or
critical violation, nothing overflows sideways at 390 px, no page is raw JSON and every
image loads. Screenshots at 1280 and 390 px go to test-artifacts/e2e/pages/; the findings
to test-artifacts/e2e/pages-report.json (read by `benchmarks/ui.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinsight.config import Settings, get_settings
from clinsight.registry import segmentation
from clinsight.registry.stages import Stage
from tests.support.browser import ARTIFACTS, BROWSER, CHROMIUM
from tests.support.pages import TemplateRecorder, Tour, page_templates, write_report
from tests.support.risk_models import copy_registry, train_pima_synthea
from tests.support.segmentation_models import register_tiny_segmenter
from tests.support.survival_models import SURVIVAL_MODEL

pytestmark = [*BROWSER, pytest.mark.slow]  # about 2 minutes (three small models, 25 pages)


@pytest.fixture(scope="module")
def risk_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e-pages-risk")
    train_pima_synthea(root)
    return root


@pytest.fixture
def settings(
    settings: Settings,
    risk_registry: Path,
    survival_registry: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """The e2e settings plus the Pima risk model, the GBSG2 survival model and a tiny
    segmenter in production."""
    registry = settings.resolved_registry_dir
    copy_registry(risk_registry / "_risk", registry / "_risk")
    copy_registry(survival_registry / "_survival", registry / "_survival")
    register_tiny_segmenter(registry)  # the patient page's "Segment" action, in production
    segmentation.REGISTRY.promote(registry, "tiny-seg", 1, Stage.PRODUCTION)
    monkeypatch.setenv("CLINSIGHT_SURVIVAL_MODEL", SURVIVAL_MODEL)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def recorder() -> TemplateRecorder:
    return TemplateRecorder()


def test_every_page_is_accessible_fits_390px_and_loads(
    recorder: TemplateRecorder, server: str, data_dir: Path
) -> None:
    from playwright.sync_api import sync_playwright

    shots = ARTIFACTS / "pages"
    shots.mkdir(parents=True, exist_ok=True)
    dicom = data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm"
    with recorder.recording(), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        tour = Tour(server, browser, recorder, shots, dicom)
        try:
            tour.run()
        finally:
            browser.close()
            report = write_report(ARTIFACTS / "pages-report.json", tour.checks, page_templates())
    checks = tour.checks
    assert report["not_covered"] == [], (
        "page templates no step of tests/support/pages.py reaches (add a step): "
        f"{report['not_covered']}"
    )
    problems = [c.problems() for c in checks if not c.clean]
    assert problems == [], "\n".join(problems)
