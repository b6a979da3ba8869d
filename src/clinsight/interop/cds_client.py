"""The calling side of CDS Hooks, for integrators checking a setup (and for the tests and
benchmarks): an EHR that signs request JWTs and publishes its JWKS, and the prefetch an EHR
would send for a patient's FHIR Bundle.

`SigningEhr` holds one RS384 (RSA 2048) and one ES384 (EC P-384) key, the two algorithms
the CDS Hooks spec requires; `write_jwks` gives the file that ``cds_hooks_issuers`` in
Settings names for its issuer. The keys live in memory only: this is a test client, not a
key store.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

__all__ = ["SigningEhr", "prefetch_for"]

_KEY_IDS = {"RS384": "rsa-1", "ES384": "ec-1"}


@dataclass(frozen=True)
class SigningEhr:
    """An issuer of CDS Hooks JWTs with one RSA (RS384) and one EC P-384 (ES384) key."""

    issuer: str
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, issuer: str = "https://ehr.example.org") -> SigningEhr:
        """An issuer with freshly generated keys."""
        return cls(
            issuer,
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ec.generate_private_key(ec.SECP384R1()),
        )

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (kid ``rsa-1`` and ``ec-1``)."""
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec_key.public_key()))
        rsa_jwk.update({"kid": _KEY_IDS["RS384"], "alg": "RS384", "use": "sig"})
        ec_jwk.update({"kid": _KEY_IDS["ES384"], "alg": "ES384", "use": "sig"})
        return {"keys": [rsa_jwk, ec_jwk]}

    def write_jwks(self, folder: Path) -> Path:
        """Write the JWK Set to folder/ehr-jwks.json (the file Settings name) and return it."""
        path = folder / "ehr-jwks.json"
        path.write_text(json.dumps(self.jwks()), encoding="utf-8")
        return path

    def token(self, audience: str, *, alg: str = "RS384", lifetime: int = 300,
              age: int = 0, **claims: Any) -> str:  # fmt: skip
        """A signed JWT for the service URL `audience`, issued `age` seconds ago and living
        `lifetime` seconds; `claims` add to or override the standard ones (None drops one).

        Raises:
            ValueError: `alg` is not RS384 or ES384.
        """
        if alg not in _KEY_IDS:
            raise ValueError(f"SigningEhr signs with RS384 or ES384, not {alg!r}.")
        now = int(time.time()) - age
        payload = {"iss": self.issuer, "sub": "client-1", "aud": audience, "iat": now,
                   "exp": now + lifetime, "jti": str(uuid.uuid4()), **claims}  # fmt: skip
        payload = {k: v for k, v in payload.items() if v is not None}
        key = self.rsa_key if alg == "RS384" else self.ec_key
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": _KEY_IDS[alg]})


def prefetch_for(bundle: Path, codes: tuple[str, ...]) -> dict[str, Any]:
    """CDS Hooks prefetch as an EHR would send it for the FHIR Bundle file `bundle`: the
    Patient, and a searchset of the observations whose code or a component code is in
    `codes` (``code`` or ``system|code``).

    Raises:
        ValueError: the file is not JSON, or the Bundle holds no Patient.
    """
    entries = json.loads(bundle.read_text(encoding="utf-8")).get("entry") or []
    resources = [e.get("resource") or {} for e in entries]
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    if patient is None:
        raise ValueError(f"{bundle} holds no Patient resource; a prefetch needs one.")
    wanted = {c.split("|")[-1] for c in codes}

    def matches(resource: dict[str, Any]) -> bool:
        concepts = [resource.get("code") or {}]
        concepts += [part.get("code") or {} for part in resource.get("component", [])]
        return any(c.get("code") in wanted for cc in concepts for c in cc.get("coding", []))

    observations = [
        {"fullUrl": e["fullUrl"], "resource": r} if "fullUrl" in e else {"resource": r}
        for e, r in zip(entries, resources, strict=True)
        if r.get("resourceType") == "Observation" and matches(r)
    ]
    searchset = {"resourceType": "Bundle", "type": "searchset", "total": len(observations),
                 "entry": observations}  # fmt: skip
    return {"patient": patient, "observations": searchset}
