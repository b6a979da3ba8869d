"""`clinsight recommend`: suggest for a person of an OMOP database (cold start, free-text
allergy shown), an unknown drug code refused, a database too small to train on."""

from __future__ import annotations

import json
from pathlib import Path

from clinsight.config import get_settings
from tests.support.cli import run_cli, wide_console
from tests.support.omop import tiny_omop
from tests.support.recommend import register_tiny

__all__ = ["wide_console"]  # the autouse fixture: a wide terminal


def test_suggest_train_and_refusals(tmp_path: Path) -> None:
    register_tiny(get_settings().resolved_registry_dir)
    url = tiny_omop(tmp_path)
    code, out = run_cli("recommend", "suggest", "1", "--name", "tiny", "--omop-url", url)
    assert code == 0, out
    assert "No treatment history: these are the treatments most often started" in out
    assert "Amoxicillin (RxNorm|723) — 8 of 11 patients with Sinusitis received Amoxicillin" in out
    code, out = run_cli("recommend", "suggest", "2", "--name", "tiny", "--omop-url", url,
                        "--json")  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["unchecked_allergies"] == ["Allergy to mold"]
    code, out = run_cli("recommend", "suggest", "1", "--name", "tiny", "--omop-url", url,
                        "--active", "RxNorm|424242")  # fmt: skip
    assert code != 0
    assert "The drug code RxNorm|424242 is unknown" in out
    code, out = run_cli("recommend", "train", "--name", "t2", "--omop-url", url)
    assert code != 0
    assert "No treatment was given to 3 or more patients" in out
