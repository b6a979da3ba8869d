"""schemathesis against the OpenAPI document: every operation, every check, as a clinician.

The store holds a patient of the clinician with a study, a prediction and feedback;
half the generated cases have their path ids replaced by those real ids, so requests
reach the code behind the access checks. Every check is on: no 5xx, every status,
content type, header and body as documented. Schema-valid input may still be refused
with 415 (bytes that decode to no image) or 422 (rules a schema cannot state, e.g. an
override needs a label and a reason), so the positive-data check accepts those too.
The fast variant runs 10 examples per operation and mode; the `slow` one runs 100.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok

from tests.support.service import PASSWORD, Service

Operation = schemathesis.APIOperation[Any, Any, Any, Any]
CHECKED = {"fast": 10, "slow": 100}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (40, 40), 90).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def api(service: Service) -> tuple[schemathesis.BaseSchema, Service, dict[str, str]]:
    """The schema loaded from the running app, and ids of real records of alice's."""
    client, alice = service.client, service.login("alice")
    person = {"mrn": "MRN-77", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
    patient = client.post("/api/v1/patients", headers=alice, json=person)
    study = client.post(f"/api/v1/patients/{patient.json()['id']}/studies", headers=alice,
                        files={"file": ("x.png", _png(), "image/png")})  # fmt: skip
    made = client.post(f"/api/v1/studies/{study.json()['id']}/predictions", headers=alice)
    assert made.status_code == 201, made.text
    note = client.post(f"/api/v1/patients/{patient.json()['id']}/notes", headers=alice,
                       json={"text": "Asthma. No fever."})  # fmt: skip
    ids = {
        "note_id": note.json()["id"],
        "patient_id": patient.json()["id"],
        "study_id": study.json()["id"],
        "prediction_id": made.json()["id"],
        "name": "breastmnist",
        "version": "1",
    }
    app = client.app
    assert app is not None
    accepted = ["2xx", "3xx", 401, 403, 404, 409, 415, 422, 429, "5xx"]
    checks = {"positive_data_acceptance": {"expected-statuses": accepted}}
    config = schemathesis.Config.from_dict({"checks": checks})
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=config)
    return schema, service, ids


def _fresh_headers(service: Service) -> dict[str, str]:
    response = service.client.post(
        "/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _operation(result: Ok[Operation] | Err[InvalidSchema]) -> Operation:
    """The operation, or the schema error that kept schemathesis from reading it."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def _check_every_operation(
    api: tuple[schemathesis.BaseSchema, Service, dict[str, str]], examples: int
) -> None:
    """Run `examples` positive and `examples` negative cases per operation; list failures."""
    schema, service, ids = api
    failures: dict[str, str] = {}
    operations = [_operation(result) for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def run(case: schemathesis.Case[Operation]) -> None:
                if mode is schemathesis.GenerationMode.NEGATIVE:  # noqa: B023 (run below)
                    case.call_and_validate()  # sent as generated: the broken part must be refused
                    return
                params = case.path_parameters or {}
                for name in params:
                    if name in ids and len(str(params[name])) % 2 == 0:
                        params[name] = ids[name]
                case.call_and_validate(headers=_fresh_headers(service))

            try:
                run()
            except Unsatisfiable:  # no parameters to break: no negative case exists
                assert mode is schemathesis.GenerationMode.NEGATIVE
                assert not list(operation.iter_parameters())
                assert operation.body is None or not operation.body
            except (Exception, BaseExceptionGroup) as exc:  # report every operation at once
                failures[f"{operation.label} ({mode.value})"] = f"{type(exc).__name__}: {exc}"
    # + models of every kind, + notes, + risk, CDS, + monitoring, + survival, + audit export,
    # + a finding as FHIR, + administration, + workspace, + progression, + recommendations,
    # + segmentations (+ upload and segment)
    assert len(operations) == 25 + 6 + 7 + 6 + 2 + 1 + 1 + 1 + 8 + 4 + 1 + 3 + 5 + 1
    assert failures == {}, "\n\n".join(f"{k}: {v}" for k, v in failures.items())


def test_api_conforms_to_its_openapi_document(
    api: tuple[schemathesis.BaseSchema, Service, dict[str, str]],
) -> None:
    _check_every_operation(api, CHECKED["fast"])


@pytest.mark.slow
def test_api_conforms_at_100_examples_per_operation(
    api: tuple[schemathesis.BaseSchema, Service, dict[str, str]],
) -> None:
    _check_every_operation(api, CHECKED["slow"])
