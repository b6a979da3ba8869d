"""Fixtures of the deployment tests."""

from tests.support.store import postgres_url  # noqa: F401 (fixture)
