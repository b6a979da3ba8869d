"""The production gate: default secrets and missing key or TLS files are refused outside
development, with every problem named at once; the first-run model's fixed epochs and the
card's statement that it is the quick first-run model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from clinsight.config import Settings, get_settings
from clinsight.errors import ConfigurationError
from clinsight.imaging.specs import TrainConfig, epoch_floor
from clinsight.registry.image import get_model
from clinsight.registry.stages import Stage
from clinsight.services.bootstrap import (
    BOOTSTRAP_CONFIG,
    BOOTSTRAP_EPOCHS,
    check_production,
    ensure_default_model,
)
from clinsight.store.db import create_db_engine, migrate

SECRET = SecretStr("s" * 32)


def _production(home: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, environment="production", home=home, **overrides)


def _safe(home: Path) -> Settings:
    key, cert, private = home / "data.key", home / "cert.pem", home / "key.pem"
    for path in (key, cert, private):
        path.write_text("x")
    return _production(
        home, jwt_secret=SECRET, key_file=key, tls_cert_file=cert, tls_key_file=private
    )


def test_development_passes_with_every_default(tmp_path: Path) -> None:
    check_production(Settings(_env_file=None, environment="development", home=tmp_path))


def test_production_with_every_default_names_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_production(_production(tmp_path))
    assert str(caught.value) == (
        "production settings are unsafe: set CLINSIGHT_JWT_SECRET to a random value of at "
        f"least 32 characters; the key file {tmp_path / 'keys' / 'data.key'} is missing "
        "(CLINSIGHT_KEY_FILE); HTTPS needs CLINSIGHT_TLS_CERT_FILE and CLINSIGHT_TLS_KEY_FILE"
    )


def test_production_with_a_secret_key_file_and_tls_files_passes(tmp_path: Path) -> None:
    check_production(_safe(tmp_path))


def test_production_without_the_jwt_secret_is_refused(tmp_path: Path) -> None:
    settings = _safe(tmp_path).model_copy(update={"jwt_secret": None})
    with pytest.raises(ConfigurationError) as caught:
        check_production(settings)
    assert str(caught.value) == (
        "production settings are unsafe: set CLINSIGHT_JWT_SECRET to a random value of at "
        "least 32 characters"
    )


def test_production_with_only_one_tls_file_configured_is_refused(tmp_path: Path) -> None:
    settings = _safe(tmp_path).model_copy(update={"tls_key_file": None})
    with pytest.raises(ConfigurationError) as caught:
        check_production(settings)
    assert str(caught.value) == (
        "production settings are unsafe: HTTPS needs CLINSIGHT_TLS_CERT_FILE and "
        "CLINSIGHT_TLS_KEY_FILE"
    )


def test_production_with_configured_files_that_do_not_exist_is_refused(tmp_path: Path) -> None:
    safe = _safe(tmp_path)
    (tmp_path / "data.key").unlink()
    (tmp_path / "cert.pem").unlink()
    (tmp_path / "key.pem").unlink()
    with pytest.raises(ConfigurationError) as caught:
        check_production(safe)
    assert str(caught.value) == (
        f"production settings are unsafe: the key file {tmp_path / 'data.key'} is missing "
        f"(CLINSIGHT_KEY_FILE); TLS file {tmp_path / 'cert.pem'} does not exist; "
        f"TLS file {tmp_path / 'key.pem'} does not exist"
    )


def test_the_first_run_model_trains_a_fixed_number_of_epochs() -> None:
    # A time budget would make the first model's quality depend on the machine's load.
    assert BOOTSTRAP_CONFIG.time_budget_minutes is None
    assert BOOTSTRAP_CONFIG.epochs == BOOTSTRAP_EPOCHS == 4
    assert epoch_floor(BOOTSTRAP_CONFIG, BOOTSTRAP_EPOCHS) >= BOOTSTRAP_EPOCHS  # never cut short
    assert BOOTSTRAP_CONFIG.class_weighting == "inverse"  # no pilot runs on first start


def test_the_first_run_model_is_the_quick_recipe_and_its_card_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (BOOTSTRAP_CONFIG.architecture, BOOTSTRAP_CONFIG.width) == ("cnn", 16)
    monkeypatch.setenv("CLINSIGHT_DEFAULT_MODEL", "breastmnist")  # small and quick here
    get_settings.cache_clear()
    settings = get_settings()
    engine = create_db_engine(settings=settings)
    migrate(engine)
    tiny = TrainConfig(architecture="cnn", width=4, epochs=2, batch_size=32, threads=1,
                       train_subset=128, class_weighting="inverse")  # fmt: skip
    assert ensure_default_model(settings, engine, config=tiny) == "breastmnist:1"
    model = get_model(settings.resolved_registry_dir, "breastmnist", stage=Stage.PRODUCTION)
    card = json.loads((model.path / "card.json").read_text())
    quick = [item for item in card["limitations"] if item.startswith("Quick first-run model")]
    assert quick == [
        "Quick first-run model: trained by `clinsight serve` on an empty registry with a "
        "short fixed recipe (cnn width 4, 2 epochs), not the full default recipe. For the "
        "full model run clinsight train image --dataset breastmnist (the full default "
        "recipe), then clinsight models promote image breastmnist VERSION."
    ]
    assert "Quick first-run model" in (model.path / "card.md").read_text()
    engine.dispose()
