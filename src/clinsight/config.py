"""The one `Settings` object; nothing else in Clinsight reads the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    allow_download: bool = Field(
        default=True, description="Download missing public datasets from their official URL."
    )

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    return Settings()
