"""`clinsight users create`, `keys rotate` and `audit verify`: each change committed by its service
with an audit entry, the chain intact afterwards; refusals are one message and status 2."""

from __future__ import annotations

import os
import pwd
import re

import pytest
from typer.testing import CliRunner

from clinsight.cli import app
from clinsight.cli import output as cli_output
from clinsight.config import get_settings
from clinsight.store.crypto import load_or_create_keyring

runner = CliRunner()


@pytest.fixture(autouse=True)
def store(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key file, quick password hashing and a wide console."""
    monkeypatch.setattr(cli_output.console, "width", 300)
    monkeypatch.setattr(cli_output.err_console, "width", 300)
    monkeypatch.setenv("CLINSIGHT_PASSWORD_HASH_MEMORY_KIB", "1024")
    get_settings.cache_clear()
    load_or_create_keyring(get_settings())


def test_create_rotate_and_verify_leave_an_intact_audit_chain() -> None:
    made = runner.invoke(app, ["users", "create", "carol", "--role", "auditor",
                               "--password", "correct horse battery"])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert re.fullmatch(r"Created auditor carol \([0-9a-f-]{36}\)\n", made.output)
    rotated = runner.invoke(app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert re.fullmatch(r"New key \S+: re-encrypted 0 values, 0 files\.\n", rotated.output)
    verified = runner.invoke(app, ["audit", "verify"])
    assert (verified.exit_code, verified.output) == (0, "Audit chain intact: 2 entries verified.\n")


def test_a_taken_username_is_refused_with_one_message() -> None:
    args = ["users", "create", "carol", "--password", "correct horse battery"]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert (again.exit_code, again.output) == (
        2, "Error: username 'carol' is taken; choose another\n"
    )  # fmt: skip


def test_the_password_is_asked_twice_when_not_given() -> None:
    typed = runner.invoke(app, ["users", "create", "dave"],
                          input="correct horse battery\ncorrect horse battery\n")  # fmt: skip
    assert typed.exit_code == 0, typed.output
    assert "Created clinician dave (" in typed.output


def _patient(mrn: str) -> str:
    """A patient registered by the clinician 'alice' (created here), its record id."""
    from datetime import date

    from clinsight.services.patients import register_patient
    from clinsight.services.users import create_local_account
    from clinsight.store.actors import Principal
    from clinsight.store.db import create_db_engine, session_factory
    from clinsight.store.repositories import StoreContext
    from clinsight.store.roles import Role

    settings = get_settings()
    alice = create_local_account(settings, username="alice", password="correct horse battery",
                                 role=Role.CLINICIAN)  # fmt: skip
    engine = create_db_engine(settings=settings)
    with session_factory(engine)() as session:
        ctx = StoreContext(session, load_or_create_keyring(settings), settings.resolved_files_dir,
                           Principal(alice.id, alice.username, alice.role))  # fmt: skip
        made = register_patient(ctx, mrn=mrn, name="Ada Lovelace", birth_date=date(1980, 12, 10),
                                sex="female")  # fmt: skip
    engine.dispose()
    return made.id


def test_users_list_disable_enable_reset_and_role_from_the_command_line() -> None:
    for name, kind in (("root", "admin"), ("dave", "clinician")):
        made = runner.invoke(app, ["users", "create", name, "--role", kind,
                                   "--password", "correct horse battery"])  # fmt: skip
        assert made.exit_code == 0, made.output
    listed = runner.invoke(app, ["users", "list", "--as", "root"])
    assert re.search(r"dave\s+│\s+clinician\s+│\s+active\s+│", listed.output), listed.output
    off = runner.invoke(app, ["users", "disable", "dave"])
    assert (off.exit_code, off.output) == (
        0, "Disabled clinician dave; their sessions have ended.\n"
    )  # fmt: skip
    assert "disabled" in runner.invoke(app, ["users", "list"]).output
    assert runner.invoke(app, ["users", "enable", "dave", "--as", "root"]).exit_code == 0
    reset = runner.invoke(app, ["users", "reset", "dave", "--as", "root"])
    assert reset.exit_code == 0
    assert re.fullmatch(r"Temporary password for dave \(shown once; their sessions have ended\):\n"
                        r"[A-Za-z0-9_-]{20}\n", reset.output)  # fmt: skip
    changed = runner.invoke(app, ["users", "role", "dave", "auditor"])
    assert (changed.exit_code, changed.output) == (
        0, "dave is now auditor; their sessions have ended.\n"
    )  # fmt: skip
    last = runner.invoke(app, ["users", "disable", "root"])
    assert (last.exit_code, last.output) == (
        2,
        "Error: 'root' is the last active admin; make another admin first, then disable this one\n",
    )
    itself = runner.invoke(app, ["users", "role", "root", "clinician", "--as", "root"])
    assert (itself.exit_code, itself.output) == (
        2, "Error: you may not demote your own account; ask another admin\n"
    )  # fmt: skip
    not_admin = runner.invoke(app, ["users", "list", "--as", "dave"])
    assert "user.list needs the role admin; user 'dave' is auditor" in not_admin.output
    from clinsight.store import audit
    from clinsight.store.db import create_db_engine, session_factory

    with session_factory(create_db_engine(settings=get_settings()))() as session:
        entries = [e for e in audit.list_entries(session) if e.action.startswith("user.")]
    login = pwd.getpwuid(os.getuid()).pw_name
    found = {(e.action, e.outcome, e.actor_id == f"os:{login}"[:36]): e.details for e in entries}
    assert found[("user.disable", "success", True)] == {
        "via": "cli", "unauthenticated_os_account": True, "sessions_ended": 0
    }  # fmt: skip
    assert found[("user.enable", "success", False)] == {
        "via": "cli", "os_user": login, "sessions_ended": 0
    }  # fmt: skip
    assert ("user.disable", "denied", True) in found  # the last admin, refused and audited
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0


def test_care_team_add_list_remove_by_mrn_from_the_command_line() -> None:
    patient_id = _patient("MRN-CLI-1")
    for name in ("root", "bob"):
        role = "admin" if name == "root" else "clinician"
        assert (
            runner.invoke(
                app,
                ["users", "create", name, "--role", role, "--password", "correct horse battery"],
            ).exit_code
            == 0
        )
    ref = f"patient {patient_id[:8]}"
    added = runner.invoke(app, ["care-team", "add", "--mrn", "MRN-CLI-1", "--user", "bob",
                                "--as", "root"])  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.output.startswith(f"bob is on the care team of {ref}.\n")
    listed = runner.invoke(app, ["care-team", "list", "--mrn", "MRN-CLI-1"])
    assert re.findall(r"│ (alice|bob)\s+│", listed.output) == ["alice", "bob"]
    removed = runner.invoke(app, ["care-team", "remove", "--mrn", "MRN-CLI-1", "--user", "bob"])
    assert removed.output.startswith(f"bob is off the care team of {ref}.\n")
    again = runner.invoke(app, ["care-team", "remove", "--mrn", "MRN-CLI-1", "--user", "bob"])
    assert (again.exit_code, again.output) == (
        2, "Error: 'bob' is not on this patient's care team\n"
    )  # fmt: skip
    unknown = runner.invoke(app, ["care-team", "list", "--mrn", "NOPE"])
    assert unknown.exit_code == 2
    assert "no patient has this MRN" in unknown.output
