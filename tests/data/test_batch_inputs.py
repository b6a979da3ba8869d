"""The inputs of a batch run: a folder walked recursively, or a study list."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinsight.data.batch_inputs import BatchInput, collect_inputs
from clinsight.errors import DataError, DataNotFoundError
from tests.support.batch import image_folder


def test_a_folder_gives_every_visible_file_keyed_by_its_relative_path(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "in", images=2)
    (folder / ".hidden").write_text("x", encoding="utf-8")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "img.png").write_bytes(b"x")
    keys = [item.key for item in collect_inputs(folder)]
    assert keys == ["bad.png", "img0.png", "img1.png", "notes/readme.txt"]
    assert collect_inputs(folder)[1] == BatchInput("img0.png", folder / "img0.png")


def test_a_study_list_names_files_and_folders_relative_to_itself(tmp_path: Path) -> None:
    study = image_folder(tmp_path / "study1", images=1)
    listing = tmp_path / "studies.txt"
    listing.write_text("# two studies\nstudy1\n\nstudy1/img0.png\nmissing.dcm\n", encoding="utf-8")
    found = collect_inputs(listing)
    assert [item.key for item in found] == [
        "missing.dcm", "study1/bad.png", "study1/img0.png", "study1/notes/readme.txt",
    ]  # fmt: skip
    assert found[2].path == study / "img0.png"
    assert found[0].path == tmp_path / "missing.dcm"  # its error is the batch's to report


def test_a_missing_source_or_a_binary_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist; give a folder of images"):
        collect_inputs(tmp_path / "nowhere")
    binary = tmp_path / "list.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DataError, match="neither a folder nor a readable study list"):
        collect_inputs(binary)
