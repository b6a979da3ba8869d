"""Loaders: typed records from files, with checksums and clear errors."""
