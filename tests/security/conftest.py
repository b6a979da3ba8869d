"""The security tests use the store fixtures (a migrated database on both backends)."""

from tests.store.conftest import (  # noqa: F401
    context,
    empty_engine,
    engine,
    keyring,
    people,
    postgres_url,
    sessions,
    settings,
)
