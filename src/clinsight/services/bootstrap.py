"""First run of the embedded service: schema, key file, admin account, certificate, model.

Production settings never create secrets: `check_production` refuses to start
without a key file, a configured certificate and key, or with a missing JWT secret.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, func, select

from clinsight.config import Settings
from clinsight.errors import ConfigurationError, ModelNotFoundError
from clinsight.imaging.specs import TrainConfig
from clinsight.imaging.training import ProgressCallback
from clinsight.registry.image import get_model
from clinsight.registry.kinds import StageAction
from clinsight.registry.mirror import attach_configured
from clinsight.registry.stages import Stage
from clinsight.registry.versions import ModelKind
from clinsight.security.records import create_user
from clinsight.services.models import StageActor, change_stage
from clinsight.services.training import train_and_register
from clinsight.store.crypto import load_or_create_keyring, write_private_file
from clinsight.store.db import create_db_engine, migrate, session_factory
from clinsight.store.roles import Role
from clinsight.store.tables import User

__all__ = [
    "BOOTSTRAP_ACTOR",
    "BOOTSTRAP_CONFIG",
    "BOOTSTRAP_EPOCHS",
    "FULL_MODEL_HINT",
    "BootstrapResult",
    "bootstrap",
    "check_production",
    "ensure_admin",
    "ensure_certificate",
    "ensure_default_model",
    "first_run_limitation",
]

# The quick first-run model: a fixed recipe (4 epochs, not a time budget, so the first model
# does not depend on how loaded the machine is; inverse-frequency class weights, no pilot
# runs) of the compact CNN at width 16 instead of the default ResNet-18 at width 24, so that
# a first `make run` serves a diagnosis within minutes. Chosen by
# `benchmarks/first_run_recipe.py` on the VALIDATION split only: the fastest candidate
# within 0.005 validation AUC of the former first-run recipe (ResNet-18 width 24, 4 epochs);
# the figures are in benchmarks/README.md. Its card says it is the quick first-run model;
# the full default recipe is trained with `clinsight train image` (FULL_MODEL_HINT).
BOOTSTRAP_EPOCHS = 4
BOOTSTRAP_CONFIG = TrainConfig(
    architecture="cnn", width=16, epochs=BOOTSTRAP_EPOCHS, class_weighting="inverse"
)
FULL_MODEL_HINT = (
    "clinsight train image --dataset {name} (the full default recipe), then "
    "clinsight models promote image {name} VERSION"
)
BOOTSTRAP_ACTOR = "system:bootstrap"


@dataclass(frozen=True)
class BootstrapResult:
    """What the first run made; `admin_password` is set only when it was generated now."""

    engine: Engine
    admin_password: str | None
    certificate: Path
    private_key: Path
    model: str


def check_production(settings: Settings) -> None:
    """Refuse unsafe production settings before anything is created.

    Raises:
        ConfigurationError: missing JWT secret, key file or configured TLS certificate and key.
    """
    if settings.environment != "production":
        return
    problems = []
    if settings.jwt_secret is None:
        problems.append("set CLINSIGHT_JWT_SECRET to a random value of at least 32 characters")
    if not settings.resolved_key_file.is_file():
        problems.append(
            f"the key file {settings.resolved_key_file} is missing (CLINSIGHT_KEY_FILE)"
        )
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        problems.append("HTTPS needs CLINSIGHT_TLS_CERT_FILE and CLINSIGHT_TLS_KEY_FILE")
    else:
        for path in (settings.tls_cert_file, settings.tls_key_file):
            if not path.is_file():
                problems.append(f"TLS file {path} does not exist")
    if problems:
        raise ConfigurationError("production settings are unsafe: " + "; ".join(problems))


def ensure_admin(engine: Engine, settings: Settings) -> str | None:
    """Create the first admin when there is no account; returns a generated password.

    Raises:
        DataError: CLINSIGHT_ADMIN_PASSWORD breaks the password rules.
    """
    with session_factory(engine)() as session:
        if session.execute(select(func.count()).select_from(User)).scalar_one() > 0:
            return None
        given = settings.admin_password
        password = given.get_secret_value() if given else secrets.token_urlsafe(18)
        create_user(
            session, settings, username="admin", password=password, role=Role.ADMIN, actor=None
        )
        session.commit()
    return None if given else password


def ensure_certificate(settings: Settings, hostname: str = "localhost") -> tuple[Path, Path]:
    """The configured certificate and key, or a self-signed localhost pair made once (0600 key).

    Raises:
        ConfigurationError: only one of certificate and key is configured.
    """
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ConfigurationError("set both CLINSIGHT_TLS_CERT_FILE and CLINSIGHT_TLS_KEY_FILE")
    cert_path, key_path = settings.resolved_tls_cert_file, settings.resolved_tls_key_file
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    if settings.tls_cert_file is not None:
        raise ConfigurationError(f"TLS certificate {cert_path} or key {key_path} does not exist")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    alt = x509.SubjectAlternativeName(
        [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(alt, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private_file(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    write_private_file(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def first_run_limitation(config: TrainConfig, name: str) -> str:
    """The model card's statement that this is the quick first-run model, and the way to
    the full one."""
    return (
        f"Quick first-run model: trained by `clinsight serve` on an empty registry with a "
        f"short fixed recipe ({config.architecture} width {config.width}, {config.epochs} "
        f"epochs), not the full default recipe. For the full model run "
        f"{FULL_MODEL_HINT.format(name=name)}."
    )


def ensure_default_model(
    settings: Settings,
    engine: Engine,
    *,
    config: TrainConfig = BOOTSTRAP_CONFIG,
    progress: ProgressCallback | None = None,
) -> str:
    """The production version of the default model, trained and promoted if there is none
    (the promotion audited, by the actor ``system:bootstrap``); the shared registry, where
    one is configured, is pulled first.

    Raises:
        DataNotFoundError: the dataset is not in the data directory.
        ModelError, RegistryError: training or registration failed.
    """
    registry, name = settings.resolved_registry_dir, settings.default_model
    if (mirror := attach_configured(settings)) is not None:
        mirror.pull()  # another replica may have registered it already
    try:
        model = get_model(registry, name, stage=Stage.PRODUCTION, verify=True)
        return f"{model.name}:{model.version}"
    except ModelNotFoundError:
        pass
    outcome = train_and_register(
        settings.resolved_data_dir,
        registry,
        name,
        config,
        run_dir=settings.home / "runs" / f"bootstrap-{name}",
        n_bootstrap=200,
        progress=progress,
        limitations=(first_run_limitation(config, name),),
    )
    assert outcome.model is not None
    actor = StageActor(BOOTSTRAP_ACTOR, BOOTSTRAP_ACTOR, {"via": "bootstrap"})
    with session_factory(engine)() as session:
        promoted = change_stage(
            session, registry, actor, ModelKind.IMAGE, name, StageAction.PROMOTE,
            outcome.model.version, note="bootstrap",
        )  # fmt: skip
    return f"{promoted.name}:{promoted.version}"


def bootstrap(
    settings: Settings, *, train_model: bool = True, progress: ProgressCallback | None = None
) -> BootstrapResult:
    """Everything `clinsight serve` needs, made once: migrated DB, keys, admin, TLS, model.

    Raises:
        ConfigurationError: unsafe production settings, or an unusable key file.
        DataNotFoundError: the default model must be trained but its data is missing.
    """
    check_production(settings)
    engine = create_db_engine(settings=settings)
    migrate(engine)
    load_or_create_keyring(settings)
    password = ensure_admin(engine, settings)
    cert, key = ensure_certificate(settings)
    model = ensure_default_model(settings, engine, progress=progress) if train_model else ""
    return BootstrapResult(engine, password, cert, key, model)
