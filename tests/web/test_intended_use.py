"""The result page of an image outside the model's intended use: no finding, the reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinsight.config import Settings, get_settings
from tests.support.dicom import dicom_for
from tests.support.service import Service
from tests.support.web import form_csrf, web_login


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The service settings with the default: every model's gate refuses."""
    monkeypatch.setenv("CLINSIGHT_INTENDED_USE_WARN_ONLY", "[]")
    get_settings.cache_clear()
    return get_settings()


def test_a_refused_image_reads_no_finding_with_the_reasons(
    service: Service, data_dir: Path
) -> None:
    client = service.client
    web_login(service, "alice")
    csrf = form_csrf(client.get("/patients").text)
    form = {"mrn": "M7", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
    patient_url = str(client.post("/patients", data={**form, "csrf": csrf}).url)
    dicom = dicom_for(data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm", **form)
    result = client.post(f"{patient_url}/studies", data={"csrf": csrf},
                         files={"file": ("x.dcm", dicom)})  # fmt: skip
    assert result.status_code == 200
    text = result.text
    assert '<h1 id="headline">No finding: outside this model\'s intended use</h1>' in text
    assert (
        "<p>The DICOM header gives body part CHEST, but the model is meant for breast "
        "ultrasound images with body part BREAST.</p>"
    ) in text
    assert "<p>No finding is given.</p>" in text
    assert "Finding:" not in text
    assert 'id="probability"' not in text
    assert 'id="positive-probability"' not in text
    assert "The image as uploaded (no heat map: no finding was given)." in text
    timeline = client.get(patient_url)
    assert "No finding (outside intended use)</a>" in timeline.text
