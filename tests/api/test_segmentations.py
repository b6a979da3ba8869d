"""Segmentation over HTTP: a DICOM study segmented into a stored mask and a DICOM SEG that
reads back and references its source, a refused image with its reasons, the review, and
denial for a clinician outside the care team."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from PIL import Image

from clinsight.config import Settings
from clinsight.evaluation.ood import IntendedUse, IntendedUseCheck
from clinsight.inference import segmentation as inference
from clinsight.inference.segmentation import SegmentationPredictor
from clinsight.registry.segmentation import REGISTRY
from clinsight.registry.stages import Stage
from tests.support.dicom import dicom_for
from tests.support.segmentation_models import register_tiny_segmenter
from tests.support.service import Service
from tests.support.web import WEB_PATIENT, form_csrf, web_login, web_patient

PERSON = {"mrn": "MRN-SEG-1", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
MODEL = "tiny-seg"


def _disc_probabilities(
    self: SegmentationPredictor, batch: NDArray[np.float32]
) -> NDArray[np.float32]:
    """A fixed map instead of the untrained network's: a disc of label 1 in the middle."""
    del self
    size = batch.shape[-1]
    rows, cols = np.mgrid[:size, :size]
    disc = (rows - size / 2) ** 2 + (cols - size / 2) ** 2 <= (size / 4) ** 2
    fg = np.where(disc, 0.9, 0.1).astype(np.float32)
    return np.stack([1 - fg, fg])[None].repeat(batch.shape[0], axis=0)


@pytest.fixture
def segmenter(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny segmenter in production, drawing a disc."""
    registry = settings.resolved_registry_dir
    register_tiny_segmenter(registry, MODEL)
    REGISTRY.promote(registry, MODEL, 1, Stage.PRODUCTION)
    monkeypatch.setattr(SegmentationPredictor, "probabilities", _disc_probabilities)


def _study(service: Service, headers: dict[str, str], content: bytes, name: str) -> str:
    client = service.client
    made = client.post("/api/v1/patients", json=PERSON, headers=headers)
    assert made.status_code == 201, made.text
    study = client.post(f"/api/v1/patients/{made.json()['id']}/studies", headers=headers,
                        files={"file": (name, content, "application/octet-stream")})  # fmt: skip
    assert study.status_code == 201, study.text
    return str(study.json()["id"])


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), (200, 80, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_dicom_study_gets_a_mask_and_a_dicom_seg(
    service: Service, segmenter: None, data_dir: Path
) -> None:
    client = service.client
    alice, bob, auditor = (service.login(u) for u in ("alice", "bob", "auditor"))
    path = data_dir / "dicom" / "pydicom_data" / "SC_rgb.dcm"
    study_id = _study(service, alice, dicom_for(path, **PERSON), "sc.dcm")
    made = client.post(f"/api/v1/studies/{study_id}/segmentations", params={"model": MODEL},
                       headers=alice)  # fmt: skip
    assert made.status_code == 201, made.text
    body = made.json()
    seg_id = body["id"]
    assert body["labels"] == ["background", "polyp"]
    assert body["areas_px"]["polyp"] > 0
    assert body["has_dicom_seg"]
    assert body["intended_use"] == "warned"
    got = client.get(f"/api/v1/segmentations/{seg_id}", headers=alice)
    assert got.json()["areas_px"] == body["areas_px"]
    mask = client.get(f"/api/v1/segmentations/{seg_id}/mask.png", headers=alice)
    assert mask.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(mask.content)))
    assert int((pixels == 1).sum()) == body["areas_px"]["polyp"]
    seg = client.get(f"/api/v1/segmentations/{seg_id}/dicom-seg", headers=alice)
    assert seg.status_code == 200
    assert seg.headers["content-type"] == "application/dicom"
    dataset = pydicom.dcmread(io.BytesIO(seg.content))
    source = pydicom.dcmread(path)
    assert dataset.Modality == "SEG"
    assert dataset.StudyInstanceUID == source.StudyInstanceUID
    referenced = dataset.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert referenced.ReferencedSOPInstanceUID == source.SOPInstanceUID
    reviewed = client.post(f"/api/v1/segmentations/{seg_id}/review",
                           json={"verdict": "agree"}, headers=alice)  # fmt: skip
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["review"] == "agree"
    for url in (f"/api/v1/segmentations/{seg_id}", f"/api/v1/segmentations/{seg_id}/mask.png",
                f"/api/v1/segmentations/{seg_id}/dicom-seg"):  # fmt: skip
        assert client.get(url, headers=bob).status_code == 403
    denied = client.post(f"/api/v1/studies/{study_id}/segmentations", params={"model": MODEL},
                         headers=bob)  # fmt: skip
    assert denied.status_code == 403
    assert client.post(f"/api/v1/segmentations/{seg_id}/review", json={"verdict": "disagree"},
                       headers=bob).status_code == 403  # fmt: skip
    entries = client.get("/api/v1/audit", headers=auditor).json()
    actions = {e["action"] for e in entries}
    assert {"segmentation.create", "segmentation.view", "segmentation.review"} <= actions


def test_a_png_study_has_no_dicom_seg(service: Service, segmenter: None) -> None:
    client = service.client
    alice = service.login("alice")
    study_id = _study(service, alice, _png(), "x.png")
    made = client.post(f"/api/v1/studies/{study_id}/segmentations", params={"model": MODEL},
                       headers=alice)  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["areas_mm2"]["polyp"] is None
    seg = client.get(f"/api/v1/segmentations/{made.json()['id']}/dicom-seg", headers=alice)
    assert seg.status_code == 404
    assert "has no DICOM SEG" in seg.json()["detail"]


def test_a_refused_image_gets_no_mask_and_keeps_the_reasons(
    service: Service, segmenter: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "This is a greyscale picture, but the model is meant for colour photos."
    refused = IntendedUseCheck(IntendedUse.REFUSED, (reason, "No finding is given."))
    monkeypatch.setattr(inference, "assess_intended_use", lambda *a, **k: refused)
    client = service.client
    alice = service.login("alice")
    study_id = _study(service, alice, _png(), "x.png")
    made = client.post(f"/api/v1/studies/{study_id}/segmentations", params={"model": MODEL},
                       headers=alice)  # fmt: skip
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["intended_use"] == "refused"
    assert body["intended_use_reasons"][0] == reason
    assert not body["has_mask"]
    assert body["areas_px"] == {}
    assert client.get(f"/api/v1/segmentations/{body['id']}/mask.png",
                      headers=alice).status_code == 404  # fmt: skip
    review = client.post(f"/api/v1/segmentations/{body['id']}/review",
                         json={"verdict": "agree"}, headers=alice)  # fmt: skip
    assert review.status_code == 422


def test_the_web_page_segments_a_study_and_takes_a_review(
    service: Service, segmenter: None, data_dir: Path
) -> None:
    client = service.client
    web_login(service, "alice")
    patient_path, csrf = web_patient(service)
    path = data_dir / "dicom" / "pydicom_data" / "SC_rgb.dcm"
    content = dicom_for(path, **WEB_PATIENT)
    uploaded = client.post(f"{patient_path}/studies", data={"csrf": csrf},
                           files={"file": ("sc.dcm", content, "application/dicom")})  # fmt: skip
    assert uploaded.status_code == 200, uploaded.text
    chart = client.get(patient_path)
    assert f"Segment ({MODEL})" in chart.text
    action = re.search(r'action="(/studies/[^"]+/segmentations)"', chart.text)
    assert action is not None
    page = client.post(action.group(1), data={"csrf": csrf, "model": MODEL})
    assert page.status_code == 200, page.text
    assert 'id="plain-image"' in page.text
    assert 'id="dicom-seg"' in page.text
    assert 'id="patient-header"' in page.text  # the header of every patient-scoped page
    assert f'id="patient-mrn">{WEB_PATIENT["mrn"]}<' in page.text
    assert "pixels" in page.text
    reviewed = client.post(f"{page.url.path}/review", data={"csrf": form_csrf(page.text),
                                                             "verdict": "disagree"})  # fmt: skip
    assert reviewed.status_code == 200
    assert 'id="current-review"' in reviewed.text
    assert "disagreed" in reviewed.text
    seg = client.get(f"{page.url.path}/dicom-seg")
    assert seg.headers["content-type"] == "application/dicom"
    assert pydicom.dcmread(io.BytesIO(seg.content)).Modality == "SEG"


def test_an_upload_is_stored_and_segmented_in_one_call(service: Service, segmenter: None) -> None:
    client = service.client
    alice, bob = service.login("alice"), service.login("bob")
    patient = client.post("/api/v1/patients", json=PERSON, headers=alice).json()["id"]
    url = f"/api/v1/patients/{patient}/segmentations"
    made = client.post(url, params={"model": MODEL}, headers=alice,
                       files={"file": ("x.png", _png(), "image/png")})  # fmt: skip
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["areas_px"]["polyp"] > 0
    assert body["review"] is None
    studies = client.get(f"/api/v1/patients/{patient}/studies", headers=alice).json()
    assert [s["id"] for s in studies] == [body["study_id"]]
    text = client.post(url, params={"model": MODEL}, headers=alice,
                       files={"file": ("a.txt", b"hello world", "text/plain")})  # fmt: skip
    assert text.status_code == 415
    assert "not a recognised image" in text.json()["detail"]
    unknown = client.post(url, params={"model": "no-such-model"}, headers=alice,
                          files={"file": ("x.png", _png(), "image/png")})  # fmt: skip
    assert unknown.status_code == 404
    assert "no-such-model" in unknown.json()["detail"]
    denied = client.post(url, params={"model": MODEL}, headers=bob,
                         files={"file": ("x.png", _png(), "image/png")})  # fmt: skip
    assert denied.status_code == 403
    after = client.get(f"/api/v1/patients/{patient}/studies", headers=alice).json()
    assert len(after) == 1  # neither the wrong file, the unknown model nor bob stored one


def test_the_web_uploads_and_segments_and_the_timeline_shows_the_review(
    service: Service, segmenter: None
) -> None:
    client = service.client
    web_login(service, "alice")
    patient_path, csrf = web_patient(service)
    chart = client.get(patient_path)
    assert 'id="segment-upload"' in chart.text
    assert f'<option value="{MODEL}">' in chart.text
    wrong = client.post(f"{patient_path}/segmentations", data={"csrf": csrf, "model": MODEL},
                        files={"file": ("a.txt", b"hello world", "text/plain")})  # fmt: skip
    assert wrong.status_code == 415
    assert "not a recognised image" in wrong.text
    page = client.post(f"{patient_path}/segmentations", data={"csrf": csrf, "model": MODEL},
                       files={"file": ("x.png", _png(), "image/png")})  # fmt: skip
    assert page.status_code == 200, page.text
    assert page.url.path.startswith("/segmentations/")
    timeline = client.get(patient_path).text
    entry = re.search(r'<li class="entry-segmentation">(.*?)</li>\s*</ul>', timeline, re.S)
    assert entry is not None
    assert f"Segmentation ({MODEL} v1)" in entry.group(1)
    assert f'href="{page.url.path}"' in entry.group(1)
    assert "polyp" in entry.group(1)
    assert "not reviewed" in entry.group(1)
    client.post(f"{page.url.path}/review", data={"csrf": form_csrf(page.text),
                                                 "verdict": "agree"})  # fmt: skip
    assert "you: agreed" in client.get(patient_path).text
