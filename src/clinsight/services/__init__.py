"""Use cases, one per module: each composes data, models, evaluation and the registry."""
