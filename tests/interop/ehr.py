"""A test EHR that signs CDS Hooks JWTs with real RS384 / ES384 keys and publishes its JWKS."""

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


@dataclass(frozen=True)
class SigningEhr:
    """An issuer with one RSA (RS384) and one EC P-384 (ES384) key."""

    issuer: str
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, issuer: str = "https://ehr.example.org") -> SigningEhr:
        """Fresh keys."""
        return cls(
            issuer,
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ec.generate_private_key(ec.SECP384R1()),
        )

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set."""
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec_key.public_key()))
        rsa_jwk.update({"kid": "rsa-1", "alg": "RS384", "use": "sig"})
        ec_jwk.update({"kid": "ec-1", "alg": "ES384", "use": "sig"})
        return {"keys": [rsa_jwk, ec_jwk]}

    def write_jwks(self, folder: Path) -> Path:
        """The JWK Set in a file, as Settings reference it."""
        path = folder / "ehr-jwks.json"
        path.write_text(json.dumps(self.jwks()))
        return path

    def token(self, audience: str, *, alg: str = "RS384", lifetime: int = 300,
              age: int = 0, **claims: Any) -> str:  # fmt: skip
        """A signed JWT for `audience`; `age` seconds old, living `lifetime` seconds."""
        now = int(time.time()) - age
        payload = {"iss": self.issuer, "sub": "client-1", "aud": audience, "iat": now,
                   "exp": now + lifetime, "jti": str(uuid.uuid4()), **claims}  # fmt: skip
        payload = {k: v for k, v in payload.items() if v is not None}
        key, kid = (self.rsa_key, "rsa-1") if alg == "RS384" else (self.ec_key, "ec-1")
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})
