"""Alembic migrations of the Clinsight store, run by `clinsight.store.db.migrate`."""
