"""The CDS Hooks client side: the signing EHR's keys and tokens, and prefetch from a Bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from clinsight.interop.cds_client import SigningEhr, prefetch_for

AUD = "https://clinsight.example.org/cds-services/x"


def _observation(code: str, *components: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": code,
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "component": [{"code": {"coding": [{"code": c}]}} for c in components],
    }  # fmt: skip


def _bundle(tmp_path: Path, *resources: dict[str, Any]) -> Path:
    path = tmp_path / "bundle.json"
    entries = [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(resources)]
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    return path


def test_prefetch_holds_the_patient_and_the_observations_with_a_wanted_code(
    tmp_path: Path,
) -> None:
    patient = {"resourceType": "Patient", "id": "p1"}
    glucose, pressure, other = (
        _observation("2339-0"),
        _observation("85354-9", "8462-4"),
        _observation("1-1"),
    )
    bundle = _bundle(tmp_path, glucose, patient, pressure, other)
    prefetch = prefetch_for(bundle, ("http://loinc.org|2339-0", "8462-4"))
    assert prefetch == {
        "patient": patient,
        "observations": {
            "resourceType": "Bundle", "type": "searchset", "total": 2,
            "entry": [{"fullUrl": "urn:uuid:0", "resource": glucose},
                      {"fullUrl": "urn:uuid:2", "resource": pressure}],
        },
    }  # fmt: skip


def test_prefetch_needs_a_patient(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no Patient resource"):
        prefetch_for(_bundle(tmp_path, _observation("2339-0")), ("2339-0",))


def test_tokens_verify_against_the_published_keys(tmp_path: Path) -> None:
    ehr = SigningEhr.create("https://ehr.test")
    keys = jwt.PyJWKSet.from_dict(json.loads(ehr.write_jwks(tmp_path).read_text()))
    assert [(k.key_id, k.algorithm_name) for k in keys.keys] == [
        ("rsa-1", "RS384"), ("ec-1", "ES384"),
    ]  # fmt: skip
    for alg, key in zip(("RS384", "ES384"), keys.keys, strict=True):
        token = ehr.token(AUD, alg=alg, lifetime=60, jti=None, patient="p1")
        assert jwt.get_unverified_header(token)["kid"] == key.key_id
        claims = jwt.decode(token, key.key, algorithms=[alg], audience=AUD)
        assert (claims["iss"], claims["exp"] - claims["iat"], claims["patient"]) == (
            "https://ehr.test", 60, "p1",
        )  # fmt: skip
        assert "jti" not in claims
    with pytest.raises(ValueError, match="RS384 or ES384, not 'HS256'"):
        ehr.token(AUD, alg="HS256")
