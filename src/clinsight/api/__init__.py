"""The HTTP layer: FastAPI app, REST routes under /api/v1, problem+json errors."""
