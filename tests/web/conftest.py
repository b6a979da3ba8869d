"""The web tests reuse the API service fixtures."""

from tests.api.conftest import service, settings, tiny_registry

__all__ = ["service", "settings", "tiny_registry"]
