"""The roles of user accounts, apart from the ORM tables: the command line reads them without
loading SQLAlchemy."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role"]


class Role(StrEnum):
    """What a user is for: each role sees only what it needs (see `security.access`)."""

    ADMIN = "admin"
    CLINICIAN = "clinician"
    AUDITOR = "auditor"
