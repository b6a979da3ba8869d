"""CDS Hooks and FHIR benchmark: patient-view latency on loopback, and the FHIR round trip.

1. FHIR round trip: every Bundle in ``<data>/fhir/synthea-r4`` is parsed with fhir.resources;
   each patient is assessed by the ``pima-synthea`` risk model (Pima, trained on the four
   features Synthea records carry) as of their last observation, and every RiskAssessment
   produced is serialised and validated again. Missing inputs are counted per feature.
2. CDS Hooks latency: the real app (``create_app``) under Uvicorn on 127.0.0.1 over HTTPS
   (the bootstrap's self-signed certificate), one keep-alive client; each ``patient-view``
   call carries a fresh ES384 JWT (signed before timing) and the prefetch of one Synthea
   patient (Patient + matching observations). p50/p95/p99 of the full round trip, for the
   model `select_model` picks (an ensemble here: Shapley explanations) and for logistic
   regression (exact linear explanations).

    .venv/bin/python benchmarks/cds.py            # selected model and logistic, 300 calls each
    .venv/bin/python benchmarks/cds.py --quick    # logistic only, 100 calls
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fhir.resources.R4B.riskassessment import RiskAssessment

from clinsight.app import create_app
from clinsight.config import Settings
from clinsight.data.fhir import PatientRecord, read_bundle
from clinsight.data.fhir_features import FhirFeatureSpec
from clinsight.data.tabular import load_dataset
from clinsight.errors import DataError
from clinsight.inference.cache import ModelCache, RiskPredictor
from clinsight.interop.cds_client import SigningEhr, prefetch_for
from clinsight.interop.fhir_out import risk_assessment, risk_assessment_json
from clinsight.registry.risk import REGISTRY
from clinsight.registry.stages import Stage
from clinsight.services.bootstrap import bootstrap
from clinsight.services.risk import assess_record
from clinsight.services.risk_training import subset_features, train_risk_model
from common import machine, update_readme_section, write_results

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MODEL, MODEL_LR = "pima-synthea", "pima-synthea-lr"
FEATURES = ["Glucose", "BloodPressure", "BMI", "Age"]
ISSUER = "https://ehr.benchmark.local"


def _train(registry: Path, name: str, logistic_only: bool, repeats: int) -> str:
    data = subset_features(load_dataset("pima", SHARED), FEATURES)
    candidates = {"logistic": {"model": "logistic"}} if logistic_only else None
    outcome = train_risk_model(
        data, registry_dir=registry, name=name, candidates=candidates, n_repeats=repeats
    )
    assert outcome.version is not None
    REGISTRY.promote(registry, name, outcome.version.version, Stage.PRODUCTION)
    return outcome.selection.best.name


def _last_seen(record: PatientRecord) -> datetime:
    times = [o.effective for o in record.observations if o.effective is not None]
    return max(times) if times else datetime.now(UTC)


def fhir_round_trip(predictor: RiskPredictor, folder: Path) -> dict[str, Any]:
    """Parse every bundle, assess every patient, validate every RiskAssessment twice."""
    spec = FhirFeatureSpec.builtin("pima-synthea")
    files = sorted(folder.glob("*.json"))
    parsed, not_patient, failed, produced, valid = 0, 0, [], 0, 0
    missing = dict.fromkeys(FEATURES, 0)
    start = time.perf_counter()
    for path in files:
        try:
            record = read_bundle(path)
        except DataError as exc:
            if "Patient resources" in str(exc):
                not_patient += 1  # hospital and practitioner bundles
                parsed += 1
            else:
                failed.append(path.name)
            continue
        parsed += 1
        result = assess_record(predictor, record, spec, as_of=_last_seen(record))
        for item in result.missing:
            missing[item.feature] += 1
        resource = risk_assessment(result, record.reference, occurrence=_last_seen(record))
        produced += 1
        again = RiskAssessment.model_validate(risk_assessment_json(resource))
        predictions = again.prediction or []
        valid += int(len(predictions) == 1 and predictions[0].probabilityDecimal is not None)
    seconds = round(time.perf_counter() - start, 2)
    return {"bundles": len(files), "parsed": parsed, "non_patient_bundles": not_patient,
            "failed": failed, "risk_assessments": produced, "valid_after_round_trip": valid,
            "missing_inputs": missing, "seconds": seconds}  # fmt: skip


def _serve(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str]:
    result = bootstrap(settings, train_model=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, engine=result.engine), host="127.0.0.1", port=port,
        ssl_certfile=str(result.certificate), ssl_keyfile=str(result.private_key),
        log_level="warning", access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"https://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", verify=False, timeout=1).is_success:
                return server, thread, base
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the server did not answer /health within 30 s")


def cds_latency(settings: Settings, ehr: SigningEhr, calls: int) -> dict[str, Any]:
    """p50/p95/p99 of patient-view calls with prefetch, one keep-alive client."""
    server, thread, base = _serve(settings)
    path = f"/cds-services/{settings.risk_model}-risk"
    url = f"{settings.public_url}{path}"
    bundles = sorted((SHARED / "fhir" / "synthea-r4").glob("*_*-*.json"))
    codes = ("2339-0", "2345-7", "8462-4", "39156-5")
    bodies = [{"hook": "patient-view", "hookInstance": f"bench-{i}",
               "context": {"userId": "Practitioner/1", "patientId": p["patient"]["id"]},
               "prefetch": p}
              for i, p in enumerate(prefetch_for(b, codes) for b in bundles)]  # fmt: skip
    tokens = [ehr.token(url, alg="ES384") for _ in range(calls + 10)]
    latencies, statuses = [], []
    try:
        with httpx.Client(base_url=base, verify=False, timeout=30) as client:
            for i in range(calls + 10):
                body = json.dumps(bodies[i % len(bodies)])
                headers = {"Authorization": f"Bearer {tokens[i]}",
                           "Content-Type": "application/json"}  # fmt: skip
                start = time.perf_counter()
                response = client.post(path, content=body, headers=headers)
                elapsed = (time.perf_counter() - start) * 1000
                if i >= 10:  # warm-up excluded
                    latencies.append(elapsed)
                    statuses.append(response.status_code)
    finally:
        server.should_exit = True
        thread.join(10)
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    p50 = round(statistics.median(ordered), 1)
    return {"calls": calls, "ok": statuses.count(200), "p50_ms": p50,
            "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": round(ordered[-1], 1),
            "prefetch_bundles": len(bodies), "load_average": os.getloadavg()}  # fmt: skip


def main() -> None:
    """Run both parts; write results/cds.json and the README section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Logistic only, 100 calls.")
    parser.add_argument("--calls", type=int, default=None)
    args = parser.parse_args()
    calls = args.calls or (100 if args.quick else 300)
    ehr = SigningEhr.create(ISSUER)
    runs = {MODEL_LR: True} if args.quick else {MODEL: False, MODEL_LR: True}
    chosen, latency = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        jwks = ehr.write_jwks(home)
        for name, logistic_only in runs.items():
            chosen[name] = _train(home / "registry", name, logistic_only, 1 if args.quick else 3)
        served = next(iter(runs))
        predictor = ModelCache(home / "registry").risk(served)
        round_trip = fhir_round_trip(predictor, SHARED / "fhir" / "synthea-r4")
        for name in runs:
            settings = Settings(
                home=home, registry_dir=home / "registry", cds_hooks_issuers={ISSUER: str(jwks)},
                public_url="https://clinsight.benchmark.local", threads=1, risk_model=name,
                risk_feature_spec="pima-synthea",
            )  # fmt: skip
            latency[name] = cds_latency(settings, ehr, calls)
    results: dict[str, Any] = {
        "machine": machine(), "models": chosen, "fhir_round_trip_model": served,
        "fhir_round_trip": round_trip, "cds_patient_view": latency,
    }  # fmt: skip
    print(json.dumps(results, indent=2))
    write_results("cds", results)
    rt = round_trip
    rows = [
        f"| `{name}` ({chosen[name]}) | {lat['calls']} | {lat['ok']} | {lat['p50_ms']} | "
        f"{lat['p95_ms']} | {lat['p99_ms']} | {lat['load_average'][0]:.1f} |"
        for name, lat in latency.items()
    ]
    update_readme_section("cds", "\n".join([
        "## CDS Hooks and FHIR round trip", "",
        f"`python benchmarks/cds.py{' --quick' if args.quick else ''}`: `patient-view` on "
        "loopback HTTPS, one keep-alive client, an ES384-signed JWT and the prefetch of one "
        f"Synthea patient per call; Pima model on the four features Synthea records carry "
        f"({results['machine']['cpu']}, {results['machine']['cores']} cores, shared). "
        "Target: p95 <= 100 ms.", "",
        "| model (selected) | calls | ok | p50 ms | p95 ms | p99 ms | load avg |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows, "",
        f"FHIR round trip (`{served}`): {rt['parsed']}/{rt['bundles']} Synthea bundles parse "
        f"({rt['non_patient_bundles']} are hospital/practitioner bundles, no Patient); "
        f"{rt['valid_after_round_trip']}/{rt['risk_assessments']} RiskAssessments validate "
        "after serialisation. Inputs missing as of each patient's last observation: "
        + ", ".join(f"{k} {v}" for k, v in rt["missing_inputs"].items()) + ".",
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
