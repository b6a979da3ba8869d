"""`clinsight users create`, `keys rotate` and `audit verify`: each change committed by its service
with an audit entry, the chain intact afterwards; refusals are one message and status 2."""

from __future__ import annotations

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
