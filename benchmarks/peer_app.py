"""The service benchmark's minimal peer: the same ONNX model behind one FastAPI endpoint.

`POST /predict` (multipart `file`) decodes the image and runs the production model with
Clinsight's own decode and inference code (`check_image`, `diagnose_image`), and answers
201 with a fresh id: TLS, PNG decode and inference, and nothing else (no authentication,
access control, store, audit or commit). Started by `benchmarks/service.py` as

    PEER_REGISTRY=... PEER_MODEL=... python -m uvicorn peer_app:app --app-dir benchmarks \
        --workers N --ssl-certfile ... --ssl-keyfile ...
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from fastapi import FastAPI, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from clinsight.config import Settings
from clinsight.inference.predictors import ImagePredictor
from clinsight.registry.image import get_model
from clinsight.registry.stages import Stage
from clinsight.services.diagnosis import diagnose_image
from clinsight.services.predictions import check_image

REGISTRY = Path(os.environ.get("PEER_REGISTRY", Settings().resolved_registry_dir))
SETTINGS = Settings(registry_dir=REGISTRY)
VERSION = get_model(REGISTRY, os.environ["PEER_MODEL"], stage=Stage.PRODUCTION, verify=True)
PREDICTOR = ImagePredictor(VERSION, threads=1)

app = FastAPI()


def _predict(content: bytes) -> dict[str, object]:
    diagnosis = diagnose_image(PREDICTOR, check_image(content, SETTINGS))
    return {"id": uuid.uuid4().hex, "label": diagnosis.prediction.label}


@app.get("/ready")
def ready() -> dict[str, str]:
    """Always ready once imported (the model loads at import)."""
    return {"status": "ready"}


@app.post("/predict", status_code=201)
async def predict(file: UploadFile) -> JSONResponse:
    """Decode and diagnose the upload; answer its label and a fresh id."""
    content = await file.read()
    return JSONResponse(await run_in_threadpool(_predict, content), status_code=201)
