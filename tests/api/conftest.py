"""The API tests use the service fixtures of `tests.support.service`."""

from tests.support.service import service, settings, tiny_registry

__all__ = ["service", "settings", "tiny_registry"]
