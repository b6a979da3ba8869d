"""A chest classifier's finding over HTTP states where its heat map lies once a lung model
is in production: the prediction's `heatmap_in_lungs` field, a note of its FHIR
Observation, and a line of the web result page; null (and no image read) before."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from clinsight.data.images import read_image
from clinsight.evaluation.explanation_overlap import heat_share_inside
from clinsight.registry import image
from clinsight.registry.segmentation import REGISTRY
from clinsight.registry.stages import Stage
from clinsight.services.diagnosis import explain_prediction
from tests.support.image_models import register_tiny
from tests.support.segmentation_models import (
    chest_frame,
    register_lung_model,
    train_tiny_lung_network,
)
from tests.support.service import Service
from tests.support.web import web_login

PERSON = {"mrn": "MRN-LUNG-1", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}


def _chest_png() -> bytes:
    frame, _ = chest_frame(40)
    wide = np.pad(frame, ((0, 0), (8, 8)), constant_values=0.75)
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(np.rint(wide * 255), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_chest_finding_states_its_heat_maps_share_inside_the_lungs(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client, settings = service.client, service.settings
    registry = settings.resolved_registry_dir
    register_tiny(registry, name="chesty")  # trained on PneumoniaMNIST: a chest classifier
    image.REGISTRY.promote(registry, "chesty", 1, Stage.PRODUCTION)
    alice, bob = service.login("alice"), service.login("bob")
    patient = client.post("/api/v1/patients", json=PERSON, headers=alice).json()["id"]
    content = _chest_png()
    made = client.post(f"/api/v1/patients/{patient}/predictions", params={"model": "chesty"},
                       files={"file": ("chest.png", content)}, headers=alice)  # fmt: skip
    assert made.status_code == 201, made.text
    url = f"/api/v1/predictions/{made.json()['id']}"
    before = client.get(url, headers=alice)
    assert before.status_code == 200
    assert before.json()["heatmap_in_lungs"] is None
    register_lung_model(registry, train_tiny_lung_network())
    REGISTRY.promote(registry, "tiny-lungs", 1, Stage.PRODUCTION)

    body = client.get(url, headers=alice).json()["heatmap_in_lungs"]
    state = client.app.state.clinsight  # type: ignore[attr-defined]
    source = read_image(content)
    predictor = state.predictor("chesty", 1)
    label = predictor.model.labels.index(made.json()["label"])
    heat = explain_prediction(predictor, source, tmp_path_factory.mktemp("cam") / "c.png",
                              label).heat  # fmt: skip
    lungs = state.models.segmentation("tiny-lungs").mask_of(source.pixels)[:, 8:72] == 1
    expected = heat_share_inside(heat, lungs)
    assert body["model_name"] == "tiny-lungs"
    assert body["model_version"] == 1
    assert body["share_inside"] == pytest.approx(expected.share_inside, rel=1e-5)
    assert body["mask_area_share"] == pytest.approx(expected.mask_area_share)
    assert body["mostly_outside"] is expected.mostly_outside
    assert body["text"].startswith(f"{expected.share_inside:.0%} of the heat map lies inside")

    notes = [n["text"] for n in client.get(f"{url}/fhir", headers=alice).json()["note"]]
    assert f"Explanation check: {body['text']}" in notes
    web_login(service, "alice")
    page = client.get(f"/predictions/{made.json()['id']}")
    assert page.status_code == 200
    assert 'id="heat-in-lungs"' in page.text
    assert f"{expected.share_inside:.0%} of the heat map lies inside the lungs" in page.text
    assert client.get(url, headers=bob).status_code == 403  # outside the care team
