"""`botregistry rewrap` is complete: rows written behind its cursor are found by the rescan and rewrapped."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tgm.domain.errors import VaultUnavailable
from tgm.domain.ports import SecretKind
from tgm.services.botregistry import migrate
from tgm.services.botregistry.adapters.sql import BotRow, make_engine, make_session_factory
from tgm.services.botregistry.rewrap import exit_code, rewrap_all
from tgm.services.vault.crypto import Cipher, Keyring
from tgm.vault_client.client import Rewrapped, ciphertext_key_version

KEYS = {1: os.urandom(32), 2: os.urandom(32)}
OLD, NEW = Cipher(Keyring(KEYS, 1)), Cipher(Keyring(KEYS, 2))


class InProcessVault:
    """Rewrap as the vault does it (open with any version, seal with the primary), plus a hook per call."""

    def __init__(self, on_call: object = None, broken: frozenset[str] = frozenset()) -> None:
        self.calls: list[str] = []
        self._on_call = on_call
        self._broken = broken

    def rewrap(self, bot_ref: str, kind: SecretKind, ciphertext: bytes) -> Rewrapped:
        self.calls.append(bot_ref)
        if callable(self._on_call):
            self._on_call(len(self.calls))
        if bot_ref in self._broken:
            raise VaultUnavailable("vault Rewrap failed: INVALID_ARGUMENT")
        plaintext = NEW.open(bot_ref, kind, ciphertext)
        if ciphertext_key_version(ciphertext) == 2:
            return Rewrapped(ciphertext, 2, False)
        return Rewrapped(NEW.seal(bot_ref, kind, plaintext).ciphertext, 2, True)


def _row(bot_id: str, index: int) -> BotRow:
    now = datetime.now(UTC)
    return BotRow(
        id=bot_id, public_id=f"p-{bot_id}", owner_id=1, telegram_bot_id=100000 + index, username=f"bot{index}",
        status="active", sealed_token=OLD.seal(bot_id, SecretKind.BOT_TOKEN, f"{index}:tok".encode()).ciphertext,
        webhook_secret_sha256=b"\0" * 32, welcome_text="", language="en", is_manager=False,
        created_at=now, updated_at=now,
    )  # fmt: skip


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate.upgrade(db_url)
    factory = make_session_factory(make_engine(db_url))
    with factory.begin() as session:
        session.add_all([_row(f"m-{index:02d}", index) for index in range(10)])
    return factory


def _versions(sessions: sessionmaker[Session]) -> dict[str, int | None]:
    with sessions() as session:
        return {row.id: ciphertext_key_version(bytes(row.sealed_token)) for row in session.scalars(select(BotRow))}


def test_a_v1_row_inserted_behind_the_cursor_is_found_and_rewrapped(sessions: sessionmaker[Session]) -> None:
    def insert_behind_the_cursor(call: int) -> None:
        if call == 7:  # mid-walk: the cursor is past "m-05"; "a-late" sorts before everything
            with sessions.begin() as session:
                session.add(_row("a-late", 99))

    vault = InProcessVault(insert_behind_the_cursor)
    report = rewrap_all(sessions, vault, batch_size=3)
    assert set(_versions(sessions).values()) == {2} and len(_versions(sessions)) == 11
    assert (report.passes, report.stale, report.primary, report.rewrapped) == (2, 0, 2, 11)
    assert vault.calls.count("a-late") == 1 and exit_code(report) == 0


def test_rows_that_stay_stale_make_the_command_fail(sessions: sessionmaker[Session]) -> None:
    vault = InProcessVault(broken=frozenset({"m-03"}))
    report = rewrap_all(sessions, vault, batch_size=4, max_passes=3)
    assert (report.passes, report.stale, report.rewrapped) == (3, 1, 9)
    assert vault.calls.count("m-03") == 3
    assert exit_code(report) == 1
    assert _versions(sessions)["m-03"] == 1


def test_a_second_run_is_a_no_op(sessions: sessionmaker[Session]) -> None:
    assert exit_code(rewrap_all(sessions, InProcessVault())) == 0
    report = rewrap_all(sessions, InProcessVault())
    assert (report.passes, report.stale, report.rewrapped, report.unchanged) == (1, 0, 0, 10)


def test_rows_without_a_token_are_skipped_and_counted_not_stale(sessions: sessionmaker[Session]) -> None:
    # Deleted and failed registrations keep their row with an empty sealed token (issue 11, blocker 2).
    with sessions.begin() as session:
        for bot_id in ("m-02", "m-07"):
            session.get(BotRow, bot_id).sealed_token = b""
    vault = InProcessVault()
    report = rewrap_all(sessions, vault)
    assert (report.empty, report.rewrapped, report.stale, report.failed) == (2, 8, 0, 0)
    assert "m-02" not in vault.calls and "m-07" not in vault.calls
    assert exit_code(report) == 0


def test_a_rewrapped_row_gets_a_new_version_so_caches_fetch_the_new_ciphertext(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        before = {row.id: row.version for row in session.scalars(select(BotRow))}
    assert exit_code(rewrap_all(sessions, InProcessVault())) == 0
    with sessions() as session:
        after = {row.id: row.version for row in session.scalars(select(BotRow))}
    assert after == {bot_id: version + 1 for bot_id, version in before.items()}
    rewrap_all(sessions, InProcessVault())  # nothing to rewrap: versions stay
    with sessions() as session:
        assert {row.id: row.version for row in session.scalars(select(BotRow))} == after
