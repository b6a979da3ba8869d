"""Batch prediction over a folder (local backend): results, the error table, resumption,
the FHIR Bundle, and no mixing of model versions in one output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clinsight.data.images import read_image
from clinsight.errors import DataError
from clinsight.imaging.networks import NetworkConfig
from clinsight.inference.batch import RESULT_COLUMNS
from clinsight.inference.predictors import ImagePredictor
from clinsight.interop.fhir_batch import BATCH_KEY_SYSTEM
from clinsight.services.batch_predict import errors_path, predict_batch, read_results
from tests.support.batch import image_folder
from tests.support.image_models import register_tiny, tiny_gate, tiny_network


def _run(folder: Path, registry: Path, out: Path, **options: object) -> object:
    return predict_batch(folder, out, registry_dir=registry, model_name="tiny", threads=1,
                         batch_size=3, **options)  # type: ignore[arg-type]  # fmt: skip


def test_every_image_gets_the_single_image_prediction_and_bad_files_a_reason(
    tmp_path: Path,
) -> None:
    version, _ = register_tiny(tmp_path / "reg")
    folder = image_folder(tmp_path / "in", images=4)
    bundle_path = tmp_path / "results.json"
    outcome = predict_batch(folder, tmp_path / "out.parquet", registry_dir=tmp_path / "reg",
                            model_name="tiny", threads=1, batch_size=3,
                            fhir_bundle=bundle_path)  # fmt: skip
    assert (outcome.inputs, outcome.predicted, outcome.skipped, outcome.refused) == (6, 4, 0, 0)
    table = read_results(tmp_path / "out.parquet").set_index("key")
    assert list(table.index) == ["img0.png", "img1.png", "img2.png", "img3.png"]
    assert (table["status"] == "ok").all()
    assert set(table["model_version"]) == {version.version}
    single = ImagePredictor(version, threads=1)
    for key, row in table.iterrows():
        alone = single.predict(read_image(folder / str(key)).pixels)
        assert json.loads(row["probabilities"]) == pytest.approx(alone.probabilities, abs=1e-6)
        assert row["decision"] == alone.decision
        assert row["input_sha256"] == alone.input_sha256
    errors = pd.read_parquet(errors_path(tmp_path / "out.parquet")).set_index("key")["reason"]
    assert list(errors.index) == ["bad.png", "notes/readme.txt"]
    assert errors["bad.png"].startswith("the PNG image is malformed or truncated")
    assert errors["notes/readme.txt"].startswith("the content is not a recognised image")
    assert not errors.str.contains("Traceback").any()
    bundle = json.loads(bundle_path.read_text(encoding="utf-8"))
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "collection")
    first = bundle["entry"][0]["resource"]
    assert first["identifier"] == [{"system": BATCH_KEY_SYSTEM, "value": "img0.png"}]
    assert first["valueCodeableConcept"]["text"] == table.loc["img0.png", "decision"]
    assert first["method"]["coding"][0]["code"] == f"tiny/{version.version}"
    assert "subject" not in first
    assert len(bundle["entry"]) == 4


def test_a_second_run_skips_what_is_done_and_retries_the_errors(tmp_path: Path) -> None:
    register_tiny(tmp_path / "reg")
    folder = image_folder(tmp_path / "in", images=4)
    out = tmp_path / "out.parquet"
    _run(folder, tmp_path / "reg", out)
    first = read_results(out)
    Image.fromarray(np.full((32, 32), 128, dtype=np.uint8)).save(folder / "img9.png")
    again = _run(folder, tmp_path / "reg", out)
    assert (again.skipped, again.predicted, len(again.errors)) == (4, 1, 2)  # type: ignore[attr-defined]
    table = read_results(out)
    assert list(table["key"]) == [*first["key"], "img9.png"]
    pd.testing.assert_frame_equal(table.iloc[:4], first)


def test_an_interrupted_run_resumes_from_its_last_flush(tmp_path: Path) -> None:
    register_tiny(tmp_path / "reg")
    folder = image_folder(tmp_path / "in", images=4)
    out = tmp_path / "out.parquet"

    def stop_after_first_batch(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(folder, tmp_path / "reg", out, flush_every=1, progress=stop_after_first_batch)
    assert list(read_results(out)["key"]) == ["img0.png", "img1.png"]  # batch 1: bad, img0, img1
    resumed = _run(folder, tmp_path / "reg", out)
    assert (resumed.skipped, resumed.predicted) == (2, 2)  # type: ignore[attr-defined]
    assert sorted(read_results(out)["key"]) == ["img0.png", "img1.png", "img2.png", "img3.png"]


def test_an_output_of_another_model_version_is_not_resumed(tmp_path: Path) -> None:
    register_tiny(tmp_path / "reg")
    register_tiny(tmp_path / "reg", seed=1)
    folder = image_folder(tmp_path / "in", images=1)
    out = tmp_path / "out.parquet"
    _run(folder, tmp_path / "reg", out, version=1)
    with pytest.raises(DataError, match=r"out.parquet holds results of tiny v1, not tiny v2: "):
        _run(folder, tmp_path / "reg", out, version=2)
    out.write_bytes(b"PAR1 not parquet")
    with pytest.raises(DataError, match=r"out\.parquet is not a readable Parquet file"):
        _run(folder, tmp_path / "reg", out)


def test_a_refused_image_has_no_finding_in_the_table_nor_in_the_bundle(tmp_path: Path) -> None:
    gate, _ = tiny_gate(tiny_network(NetworkConfig("cnn", 1, 2, width=4)))
    register_tiny(tmp_path / "reg", intended_use_gate=gate)
    folder = tmp_path / "in"
    folder.mkdir()
    photo = np.zeros((32, 32, 3), dtype=np.uint8)
    photo[..., 0] = 220
    Image.fromarray(photo).save(folder / "photo.png")
    bundle_path = tmp_path / "results.json"
    outcome = _run(folder, tmp_path / "reg", tmp_path / "out.parquet", fhir_bundle=bundle_path)
    assert (outcome.predicted, outcome.refused) == (1, 1)  # type: ignore[attr-defined]
    table = read_results(tmp_path / "out.parquet").set_index("key")
    photo_row = table.loc["photo.png"]
    assert photo_row["status"] == "refused"
    assert "This is a colour picture (mean colour saturation 0.86" in photo_row["reason"]
    assert photo_row["decision"] == ""
    assert np.isnan(photo_row["label_probability"])
    (entry,) = json.loads(bundle_path.read_text(encoding="utf-8"))["entry"]
    refused = entry["resource"]
    assert "valueCodeableConcept" not in refused
    assert refused["dataAbsentReason"]["coding"][0]["code"] == "not-applicable"
    assert refused["identifier"] == [{"system": BATCH_KEY_SYSTEM, "value": "photo.png"}]
    assert "This is a colour picture" in refused["note"][0]["text"]


def test_the_table_has_exactly_the_result_columns(tmp_path: Path) -> None:
    register_tiny(tmp_path / "reg")
    _run(image_folder(tmp_path / "in", images=1), tmp_path / "reg", tmp_path / "out.parquet")
    assert tuple(pd.read_parquet(tmp_path / "out.parquet").columns) == RESULT_COLUMNS
    assert tuple(read_results(tmp_path / "none.parquet").columns) == RESULT_COLUMNS
