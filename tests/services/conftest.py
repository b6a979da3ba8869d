"""The services tests that need a store use its fixtures (a migrated database on both
backends)."""

from tests.support.store import (  # noqa: F401 (fixtures)
    context,
    empty_engine,
    engine,
    keyring,
    people,
    postgres_url,
    sessions,
    settings,
)
