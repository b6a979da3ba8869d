"""Clinsight: self-hostable AI clinical decision support."""

from clinsight.config import Settings, get_settings
from clinsight.errors import ClinsightError

__all__ = ["ClinsightError", "Settings", "__version__", "get_settings"]

__version__ = "0.1.0"
