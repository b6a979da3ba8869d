"""HL7 CDS Hooks 2.0: service discovery, prefetch, cards from a risk assessment, and the JWT
that authenticates the calling EHR.

No HTTP here (`api/routes/cds_hooks.py` serves it). A service is a registered risk model
with a FHIR feature spec; its prefetch templates ask the EHR for the Patient and the
observations the spec reads. The EHR signs each request with a JWT (RS384 or ES384; the
spec requires both): the issuer must be allow-listed with its JWKS (a local file or an
https URL, in Settings), ``aud`` must be this service's URL, ``exp`` at most 5 minutes after
``iat``, and each ``jti`` is accepted once.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt

from clinsight.data.fhir import PatientRecord, parse_bundle
from clinsight.data.fhir_features import FhirFeatureSpec
from clinsight.errors import (
    AuthenticationError,
    ConfigurationError,
    DataError,
    ImplausibleInputError,
)
from clinsight.inference.risk import RiskResult
from clinsight.interop.fhir_out import explanation_text
from clinsight.security.tokens import jwt_problem

__all__ = [
    "ALGORITHMS",
    "MAX_TOKEN_LIFETIME_S",
    "CdsCaller",
    "CdsJwtVerifier",
    "CdsService",
    "build_cards",
    "discovery",
    "implausible_card",
    "missing_prefetch",
    "prefetch_bundle",
    "record_from_prefetch",
]

ALGORITHMS = ("RS384", "ES384")
MAX_TOKEN_LIFETIME_S = 300
SUMMARY_LIMIT = 140
_INDICATOR = {"info": "info", "warning": "warning", "critical": "critical"}


@dataclass(frozen=True)
class CdsService:
    """A ``patient-view`` service backed by a risk or survival model (`kind`) and a FHIR
    feature spec."""

    id: str
    title: str
    description: str
    model_name: str
    spec: FhirFeatureSpec
    kind: Literal["risk", "survival"] = "risk"

    @property
    def prefetch(self) -> dict[str, str]:
        """Prefetch templates: the Patient, and the observations the feature spec reads."""
        codes = sorted({c for r in self.spec.rules if r.source == "observation" for c in r.codes})
        templates = {"patient": "Patient/{{context.patientId}}"}
        if codes:
            templates["observations"] = (
                "Observation?patient={{context.patientId}}&combo-code="
                + ",".join(codes)
                + "&_sort=-date&_count=100"
            )
        return templates

    def to_discovery(self) -> dict[str, Any]:
        """This service's entry in the discovery document."""
        return {
            "hook": "patient-view",
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": self.prefetch,
        }


def discovery(services: Mapping[str, CdsService]) -> dict[str, Any]:
    """The body of ``GET /cds-services``."""
    return {"services": [s.to_discovery() for s in services.values()]}


def missing_prefetch(service: CdsService, request: Mapping[str, Any]) -> list[str]:
    """The prefetch keys the service needs that the request lacks (or sent as null)."""
    given = request.get("prefetch") or {}
    return [key for key in service.prefetch if given.get(key) is None]


def prefetch_bundle(absent: list[str], request: Mapping[str, Any]) -> dict[str, Any]:
    """One collection Bundle of the prefetch's Patient and observation search Bundle;
    `absent` is the service's missing prefetch keys.

    Raises:
        DataError: a prefetch key is missing or the Patient is not the context patient.
    """
    if absent:
        raise DataError(f"prefetch lacks {', '.join(absent)}; send the service's templates.")
    prefetch = request["prefetch"]
    patient = prefetch["patient"]
    context_id = (request.get("context") or {}).get("patientId")
    if not isinstance(patient, Mapping) or patient.get("resourceType") != "Patient":
        raise DataError("prefetch 'patient' must be a FHIR Patient resource.")
    if context_id is not None and patient.get("id") != context_id:
        raise DataError("prefetch 'patient' is not the patient of context.patientId.")
    entries: list[Any] = [{"resource": patient}]
    searchset = prefetch.get("observations")
    if isinstance(searchset, Mapping):
        entries += [e for e in searchset.get("entry") or [] if isinstance(e, Mapping)]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def record_from_prefetch(service: CdsService, request: Mapping[str, Any]) -> PatientRecord:
    """The patient record from the request's prefetch (Patient + observation search Bundle).

    Raises:
        DataError: a prefetch key is missing, the Patient is not the context patient, or the
            resources do not validate as FHIR R4.
    """
    bundle = prefetch_bundle(missing_prefetch(service, request), request)
    return parse_bundle(json.dumps(bundle), source="prefetch")


def build_cards(
    service: CdsService, result: RiskResult, card_url: str, *, top: int = 3
) -> list[dict[str, Any]]:
    """One card: summary (< 140 characters), indicator from the model's calibrated
    thresholds, the top contributing factors and missing inputs in the detail (Markdown),
    and a link to the model card. A patient outside the model's validated population gets
    indicator ``warning``, a summary that says so without the risk figure (the figure is in
    the detail, after the warning)."""
    model = result.model
    warning = result.population_warning
    summary = (
        f"{model.task.positive_label.capitalize()} risk {result.probability:.0%} "
        f"({result.level}) - {service.title}"
        if warning is None
        else f"Outside the model's validated population: risk not reliable - {service.title}"
    )
    if len(summary) >= SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 2] + "…"
    lines = [f"**{warning.message}**", ""] if warning is not None else []
    lines += [
        f"Calibrated probability of {model.task.positive_label}: **{result.probability:.1%}** "
        f"(warning at {model.thresholds['warning']:.0%}, critical at "
        f"{model.thresholds['critical']:.0%}).",
        "",
        f"Top contributing factors: {explanation_text(result, top)}.",
    ]
    if result.missing:
        listing = "; ".join(f"{m.feature}: {m.reason}" for m in result.missing)
        lines += ["", f"Missing inputs (the model imputed them): {listing}."]
    label = f"Clinsight {model.name} v{model.version}"
    return [
        {
            "uuid": str(uuid.uuid4()),
            "summary": summary,
            "indicator": "warning" if warning is not None else _INDICATOR[result.level],
            "detail": "\n".join(lines),
            "source": {"label": label, "url": card_url},
            "links": [{"label": "Model card", "url": card_url, "type": "absolute"}],
        }
    ]


def implausible_card(service: CdsService, error: ImplausibleInputError) -> dict[str, Any]:
    """The warning card answered instead of a risk when a record's value is implausible."""
    listing = "\n".join(f"- {message}" for message in error.fields.values())
    return {
        "uuid": str(uuid.uuid4()),
        "summary": f"No risk: implausible input in the record - {service.title}"[
            : SUMMARY_LIMIT - 1
        ],
        "indicator": "warning",
        "detail": (
            "The risk was not computed, because these values lie outside their plausible "
            f"range (an entry or coding error?):\n{listing}\n\nCorrect them in the record."
        ),
        "source": {"label": f"Clinsight {service.model_name}"},
    }


@dataclass(frozen=True)
class CdsCaller:
    """The authenticated EHR behind a CDS Hooks request."""

    issuer: str
    subject: str | None
    jti: str
    expires: float


class CdsJwtVerifier:
    """Checks the bearer JWT of a CDS Hooks request against allow-listed issuers.

    `issuers` maps each trusted ``iss`` to its JWKS: a file path or an ``https://`` URL.
    """

    def __init__(self, issuers: Mapping[str, str], *, leeway_s: float = 30.0) -> None:
        self._issuers = dict(issuers)
        self._leeway = leeway_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clients: dict[str, jwt.PyJWKClient] = {}
        self._files: dict[str, tuple[int, jwt.PyJWKSet]] = {}

    def _key(self, issuer: str, kid: str | None) -> Any:
        source = self._issuers[issuer]
        if source.startswith("https://"):
            client = self._clients.setdefault(issuer, jwt.PyJWKClient(source, lifespan=300))
            if kid is None:
                raise AuthenticationError("the CDS Hooks JWT header lacks 'kid'.")
            return client.get_signing_key(kid).key
        keys = self._jwks_file(issuer, Path(source))
        matches = [k for k in keys.keys if kid is None or k.key_id == kid]
        if not matches:
            raise AuthenticationError(f"no key {kid!r} in the JWKS of issuer {issuer!r}.")
        return matches[0].key

    def _jwks_file(self, issuer: str, path: Path) -> jwt.PyJWKSet:
        """The JWK Set in `path`, re-read only when the file changes (keys rotate by file)."""
        try:
            stamp = path.stat().st_mtime_ns
            cached = self._files.get(issuer)
            if cached is None or cached[0] != stamp:
                keys = jwt.PyJWKSet.from_dict(json.loads(path.read_text(encoding="utf-8")))
                self._files[issuer] = cached = (stamp, keys)
        except (OSError, ValueError, jwt.PyJWKSetError) as exc:
            raise ConfigurationError(f"JWKS of issuer {issuer!r} ({path}) unusable: {exc}") from exc
        return cached[1]

    def verify(self, token: str, audience: str) -> CdsCaller:
        """The checked claims of `token` for the service at `audience`.

        Raises:
            AuthenticationError: malformed token, algorithm not RS384/ES384, issuer not
                allow-listed, unknown key, bad signature, wrong audience, expired, a
                lifetime over 5 minutes, or a replayed or missing ``jti``.
            ConfigurationError: the issuer's JWKS file cannot be read.
        """
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the CDS Hooks JWT was refused: {jwt_problem(exc)}") from exc
        if header.get("alg") not in ALGORITHMS:
            raise AuthenticationError(f"JWT alg {header.get('alg')!r} refused; use {ALGORITHMS}.")
        issuer = unverified.get("iss")
        if issuer not in self._issuers:
            raise AuthenticationError(f"issuer {issuer!r} is not allow-listed for CDS Hooks.")
        try:
            claims = jwt.decode(
                token, self._key(issuer, header.get("kid")), algorithms=list(ALGORITHMS),
                audience=audience, issuer=issuer, leeway=self._leeway,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )  # fmt: skip
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the CDS Hooks JWT was refused: {jwt_problem(exc)}") from exc
        if float(claims["exp"]) - float(claims["iat"]) > MAX_TOKEN_LIFETIME_S:
            raise AuthenticationError("the CDS Hooks JWT lives over 5 minutes (exp - iat).")
        return self._once(CdsCaller(issuer, claims.get("sub"), str(claims["jti"]), claims["exp"]))

    def _once(self, claims: CdsCaller) -> CdsCaller:
        now = time.time()
        key = f"{claims.issuer}\n{claims.jti}"
        with self._lock:
            self._seen = {k: exp for k, exp in self._seen.items() if exp + self._leeway > now}
            if key in self._seen:
                raise AuthenticationError("the CDS Hooks JWT was replayed (jti seen before).")
            self._seen[key] = claims.expires
        return claims
