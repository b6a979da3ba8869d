"""`clinsight models` for every kind: command-line promotion, rollback and archive each
append an audit entry naming the actor (the `--as` admin, or the operating-system account
flagged as unauthenticated), record the actor in the stage history, and leave the audit
chain verifiable; a non-admin or unknown `--as` is refused."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import pytest

from clinsight.config import get_settings
from clinsight.registry.kinds import stage_history
from clinsight.registry.versions import ModelKind
from clinsight.services.users import create_local_account
from clinsight.store import audit
from clinsight.store.db import create_db_engine, session_factory
from clinsight.store.roles import Role
from tests.support.cli import run_cli, wide_console
from tests.support.image_models import register_tiny as register_image
from tests.support.ner_models import register_tiny as register_ner
from tests.support.ner_models import tiny_spacy
from tests.support.progression import train_tiny as train_progression
from tests.support.recommend import register_tiny as register_recommendation
from tests.support.risk_models import MODEL_NAME, train_pima_synthea
from tests.support.segmentation_models import register_tiny_segmenter
from tests.support.survival_models import SURVIVAL_MODEL, train_gbsg2

__all__ = ["wide_console"]  # the autouse fixture: a wide terminal
PASSWORD = "correct horse battery staple"
NAMES = {ModelKind.IMAGE: "tiny", ModelKind.RISK: MODEL_NAME, ModelKind.NER: "tiny",
         ModelKind.SURVIVAL: SURVIVAL_MODEL, ModelKind.PROGRESSION: "tiny",
         ModelKind.RECOMMENDATION: "tiny", ModelKind.SEGMENTATION: "tiny-seg"}  # fmt: skip
RESOURCES = {ModelKind.IMAGE: "model", ModelKind.RISK: "risk_model", ModelKind.NER: "ner_model",
             ModelKind.SURVIVAL: "survival_model", ModelKind.PROGRESSION: "progression_model",
             ModelKind.RECOMMENDATION: "recommendation_model",
             ModelKind.SEGMENTATION: "segmentation_model"}  # fmt: skip


@pytest.fixture(scope="module")
def two_versions_each(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A registry with two candidate versions of one model of every kind."""
    registry = tmp_path_factory.mktemp("three-kinds")
    for seed in (0, 1):
        register_image(registry, seed=seed)
        train_pima_synthea(registry, production=False)
        register_ner(registry, tiny_spacy(data_dir), data_dir, name="tiny", promote=False)
        train_gbsg2(registry, production=False)
        train_progression(data_dir, registry, tmp_path_factory.mktemp("progression-work"))
        register_recommendation(registry)
        register_tiny_segmenter(registry)
    return registry


@pytest.mark.parametrize("kind", list(ModelKind))
def test_command_line_stage_changes_are_audited_with_their_actor(
    kind: ModelKind, two_versions_each: Path
) -> None:
    settings = get_settings()
    shutil.copytree(two_versions_each, settings.resolved_registry_dir)
    admin = create_local_account(settings, username="root", password=PASSWORD, role=Role.ADMIN)
    alice = create_local_account(settings, username="alice", password=PASSWORD, role=Role.CLINICIAN)
    login = pwd.getpwuid(os.getuid()).pw_name
    name = NAMES[kind]

    code, out = run_cli("models", "promote", kind, name, "1", "--as", "root", "--note", "first")
    assert (code, out.strip()) == (0, f"{kind} model {name} v1 is now production.")
    code, out = run_cli("models", "promote", kind, name, "2")
    assert (code, out.strip()) == (0, f"{kind} model {name} v2 is now production.")
    code, out = run_cli("models", "rollback", kind, name, "--as", "ROOT")
    assert (code, out.strip()) == (0, f"{kind} model {name} v1 is back in production.")
    code, out = run_cli("models", "archive", kind, name, "1", "--as", "root")
    assert (code, out.strip()) == (0, f"{kind} model {name} v1 is now archived.")
    code, out = run_cli("models", "promote", kind, name, "2", "--as", "alice")
    assert code == 2
    assert "model.promote needs the role admin; user 'alice' is clinician" in out
    code, out = run_cli("models", "rollback", kind, name, "--as", "nobody")
    assert code == 2
    assert "no account is named 'nobody'" in out
    code, out = run_cli("models", "verify", kind, name, "1")
    assert code == 0, out

    code, out = run_cli("audit", "verify")
    assert (code, out.strip()) == (0, "Audit chain intact: 7 entries verified.")
    with session_factory(create_db_engine(settings=settings))() as session:
        entries = list(reversed(audit.list_entries(session)))
    os_actor = f"os:{login}"[:36]
    assert [
        (e.action, e.resource_type, e.resource_id, e.actor_id, e.outcome, e.details)
        for e in entries
        if e.action.startswith("model.") or e.outcome == "denied"
    ] == [
        ("model.promote", RESOURCES[kind], f"{name}:1", admin.id, "success",
         {"stage": "production", "via": "cli", "os_user": login}),
        ("model.promote", RESOURCES[kind], f"{name}:2", os_actor, "success",
         {"stage": "production", "via": "cli", "unauthenticated_os_account": True}),
        ("model.rollback", RESOURCES[kind], f"{name}:1", admin.id, "success",
         {"via": "cli", "os_user": login}),
        ("model.archive", RESOURCES[kind], f"{name}:1", admin.id, "success",
         {"stage": "archived", "via": "cli", "os_user": login}),
        ("model.promote", "role", None, alice.id, "denied", {"role": "clinician"}),
    ]  # fmt: skip
    history = stage_history(settings.resolved_registry_dir, kind, name)
    assert [(c.version, str(c.to_stage), c.actor, c.note) for c in history] == [
        (1, "candidate", "", "registered"),
        (2, "candidate", "", "registered"),
        (1, "production", "root", "first"),
        (1, "archived", os_actor, "replaced by v2"),
        (2, "production", os_actor, ""),
        (2, "archived", "root", "replaced by v1"),
        (1, "production", "root", "rollback"),
        (1, "archived", "root", ""),
    ]


def test_models_list_shows_every_kind(two_versions_each: Path) -> None:
    shutil.copytree(two_versions_each, get_settings().resolved_registry_dir)
    code, out = run_cli("models", "list")
    assert code == 0, out
    rows = [line.split("│")[1:5] for line in out.splitlines() if "candidate" in line]
    assert [[cell.strip() for cell in row] for row in rows] == [
        [kind, NAMES[ModelKind(kind)], version, "candidate"]
        for kind in (kind.value for kind in ModelKind)
        for version in ("1", "2")
    ]
    code, out = run_cli("models", "list", "--name", "tiny")
    assert (code, out.strip()) == (2, "Error: --name needs --kind (names are per kind).")
    code, out = run_cli("models", "promote", "image", "tiny")
    assert code == 2
    assert "Missing argument" in out
