"""The web tests use the API service fixtures."""

from tests.support.service import service, settings, tiny_registry

__all__ = ["service", "settings", "tiny_registry"]
