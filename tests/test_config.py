"""The one Settings object: the CLINSIGHT_ prefix, defaults, derived paths, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clinsight.config import Settings, get_settings
from clinsight.errors import ConfigurationError


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CLINSIGHT_ variable set, HOME in tmp_path and no .env in the working folder."""
    for name in list(os.environ):
        if name.startswith("CLINSIGHT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    return tmp_path


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(f"CLINSIGHT_{name}", value)
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    return str(caught.value)


def test_defaults_without_any_variable(bare_env: Path) -> None:
    settings = get_settings()
    home = bare_env / ".clinsight"
    assert settings.environment == "development"
    assert settings.home == home
    assert (settings.threads, settings.workers, settings.request_threads) == (0, 0, 4)
    assert settings.allow_download is True
    assert settings.jwt_secret is None
    assert settings.admin_password is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8443)
    assert settings.access_token_minutes == 15
    assert settings.default_model == "pneumoniamnist"
    assert settings.risk_model == settings.risk_feature_spec == "pima-synthea"
    assert settings.cds_hooks_issuers == {}
    assert settings.upload_max_bytes == 64 * 2**20


def test_paths_derive_from_clinsight_home(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = bare_env / "state"
    monkeypatch.setenv("CLINSIGHT_HOME", str(home))
    settings = get_settings()
    assert settings.home == home
    assert settings.resolved_data_dir == home / "data"
    assert settings.resolved_registry_dir == home / "registry"
    assert settings.resolved_database_url == f"sqlite:///{home / 'clinsight.db'}"
    assert settings.resolved_key_file == home / "keys" / "data.key"
    assert settings.resolved_files_dir == home / "files"
    assert settings.resolved_tls_cert_file == home / "tls" / "cert.pem"
    assert settings.resolved_tls_key_file == home / "tls" / "key.pem"


def test_explicit_paths_win_over_home(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATA_DIR", "REGISTRY_DIR", "KEY_FILE", "FILES_DIR"):
        monkeypatch.setenv(f"CLINSIGHT_{name}", str(bare_env / name.lower()))
    monkeypatch.setenv("CLINSIGHT_DATABASE_URL", "postgresql+psycopg://u@db/clinsight")
    settings = get_settings()
    assert settings.resolved_data_dir == bare_env / "data_dir"
    assert settings.resolved_registry_dir == bare_env / "registry_dir"
    assert settings.resolved_key_file == bare_env / "key_file"
    assert settings.resolved_files_dir == bare_env / "files_dir"
    assert settings.resolved_database_url == "postgresql+psycopg://u@db/clinsight"


def test_only_the_clinsight_prefix_is_read(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADS", "3")
    monkeypatch.setenv("CLINSIGHT_WORKERS", "2")
    monkeypatch.setenv("CLINSIGHT_ALLOW_DOWNLOAD", "0")
    monkeypatch.setenv("CLINSIGHT_CDS_HOOKS_ISSUERS", '{"https://ehr.example": "/jwks.json"}')
    settings = get_settings()
    assert settings.threads == 0
    assert settings.workers == settings.resolved_workers == 2
    assert settings.allow_download is False
    assert settings.cds_hooks_issuers == {"https://ehr.example": "/jwks.json"}


def test_a_dotenv_file_in_the_working_folder_is_read(bare_env: Path) -> None:
    (bare_env / ".env").write_text("CLINSIGHT_PORT=9443\n")
    assert get_settings().port == 9443


def test_settings_are_cached_until_cleared(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("CLINSIGHT_PORT", "9000")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().port == 9000


def test_resolved_workers_is_one_per_core_at_most_eight(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 32)
    assert Settings().resolved_workers == 8
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert Settings().resolved_workers == 1


def test_malformed_values_name_the_variable_the_value_and_the_rule(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = _error(monkeypatch, THREADS="abc", WORKERS="65")
    assert message == (
        "CLINSIGHT_THREADS='abc': Input should be a valid integer, unable to parse string as "
        "an integer; CLINSIGHT_WORKERS='65': Input should be less than or equal to 64; "
        "fix or unset the variable"
    )


def test_an_unknown_environment_is_refused(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _error(monkeypatch, ENVIRONMENT="staging") == (
        "CLINSIGHT_ENVIRONMENT='staging': Input should be 'development' or 'production'; "
        "fix or unset the variable"
    )


def test_a_short_secret_is_refused_without_showing_it(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = _error(monkeypatch, JWT_SECRET="hunter2-short", ADMIN_PASSWORD="pw")
    assert "hunter2" not in message
    assert message == (
        "CLINSIGHT_JWT_SECRET='***': Value should have at least 32 items after validation, "
        "not 13; CLINSIGHT_ADMIN_PASSWORD='***': Value should have at least 12 items after "
        "validation, not 2; fix or unset the variable"
    )


def test_a_json_variable_that_is_not_json_is_a_configuration_error(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _error(monkeypatch, CDS_HOOKS_ISSUERS="not json") == (
        "CLINSIGHT_CDS_HOOKS_ISSUERS is not valid JSON; fix or unset the variable"
    )
