"""The real data directory the tests read: ../shared/data unless CLINSIGHT_DATA_DIR is set."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ROOT", "shared_data"]

ROOT = Path(__file__).resolve().parents[2]


def shared_data() -> Path:
    """The shared data directory (it may be absent; callers skip then)."""
    env = os.environ.get("CLINSIGHT_DATA_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "data"
