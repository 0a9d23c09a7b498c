"""`python -m tgm.services.botregistry rewrap`: re-seal every stored bot token under the vault's primary key version.

Walks `bots` in primary-key order, `batch_size` rows at a time; each token goes through the vault's `Rewrap`
(the plaintext never leaves the vault) and each batch is committed on its own. A row is only updated if its
sealed_token is still the one that was rewrapped (compare-and-set), so a concurrent re-registration is never
overwritten. Safe to re-run: tokens already under the primary version come back unchanged and are not written.

A cursor walk can miss rows written behind the cursor while it runs (e.g. a registry instance that still sealed
with the old version). So after the walk the table is rescanned for rows whose ciphertext header names another
key version than the primary (the version every Rewrap reply reports); those are rewrapped in another pass, up to
`max_passes`. The command exits 0 only when the last rescan found none (`stale == 0`): only then may the old key
version be retired (`tgm keys retire N`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tgm.domain.errors import VaultUnavailable
from tgm.domain.ports import SecretKind
from tgm.services.botregistry.adapters.sql import BotRow
from tgm.services.botregistry.settings import RegistrySettings
from tgm.vault_client.client import ciphertext_key_version

logger = logging.getLogger(__name__)
MAX_PASSES = 5


class Rewrapped(Protocol):
    @property
    def ciphertext(self) -> bytes: ...

    @property
    def key_version(self) -> int: ...

    @property
    def changed(self) -> bool: ...


class Rewrapper(Protocol):
    def rewrap(self, bot_ref: str, kind: SecretKind, ciphertext: bytes) -> Rewrapped: ...


@dataclass
class RewrapReport:
    total: int = 0
    rewrapped: int = 0
    unchanged: int = 0
    failed: int = 0
    conflicts: int = 0  # the row changed while its token was being rewrapped; the new value is already current
    empty: int = 0  # rows with no sealed token (deleted or failed registrations): nothing to rewrap, never stale
    passes: int = 0
    stale: int = -1  # rows not under the primary key version at the last rescan (-1: never rescanned)
    primary: int = 0  # the primary key version the vault reported


def exit_code(report: RewrapReport) -> int:
    return 0 if report.stale == 0 else 1


def rewrap_all(
    sessions: sessionmaker[Session], vault: Rewrapper, batch_size: int = 100, max_passes: int = MAX_PASSES
) -> RewrapReport:
    """Walks every row, then rescans and re-walks the stale ones until none is left or `max_passes` is used up."""
    report = RewrapReport()
    only: set[str] | None = None  # None: every row
    for _ in range(max_passes):
        report.passes += 1
        _walk(sessions, vault, report, batch_size, only)
        only = _stale_ids(sessions, report.primary, batch_size)
        report.stale = len(only)
        logger.info("rewrap pass done", extra=asdict(report))
        if not only:
            break
    return report


def _rows_after(sessions: sessionmaker[Session], last_id: str, batch_size: int) -> list[tuple[str, bytes]]:
    with sessions() as session:
        query = select(BotRow.id, BotRow.sealed_token).where(BotRow.id > last_id).order_by(BotRow.id)
        return [(bot_id, bytes(sealed)) for bot_id, sealed in session.execute(query.limit(batch_size))]


def _stale_ids(sessions: sessionmaker[Session], primary: int, batch_size: int) -> set[str]:
    """Rows whose ciphertext is not under `primary` (every row when no Rewrap reply ever told us the primary)."""
    stale: set[str] = set()
    last_id = ""
    while rows := _rows_after(sessions, last_id, batch_size):
        last_id = rows[-1][0]
        stale.update(
            bot_id for bot_id, sealed in rows if sealed and (not primary or ciphertext_key_version(sealed) != primary)
        )
    return stale


def _walk(
    sessions: sessionmaker[Session], vault: Rewrapper, report: RewrapReport, batch_size: int, only: set[str] | None
) -> None:
    last_id = ""
    while True:
        batch = _rows_after(sessions, last_id, batch_size)
        if not batch:
            return
        last_id = batch[-1][0]
        rows = [(bot_id, sealed) for bot_id, sealed in batch if only is None or bot_id in only]
        changes: list[tuple[str, bytes, bytes]] = []
        for bot_id, sealed in rows:
            report.total += 1
            if not sealed:  # a deleted or failed bot keeps its row without a token: nothing is sealed there
                report.empty += 1
                continue
            try:
                result = vault.rewrap(bot_id, SecretKind.BOT_TOKEN, sealed)
            except VaultUnavailable as exc:
                report.failed += 1
                logger.error("rewrap failed", extra={"bot_id": bot_id, "error": str(exc)})
                continue
            report.primary = result.key_version  # the latest reply names the current primary
            if result.changed:
                changes.append((bot_id, sealed, result.ciphertext))
            else:
                report.unchanged += 1
        with sessions.begin() as session:
            for bot_id, old, new in changes:
                statement = (
                    update(BotRow)
                    .where(BotRow.id == bot_id, BotRow.sealed_token == old)
                    # A new version: caches keyed on it (the dispatchers' bot cache) fetch the new ciphertext, and
                    # a concurrent save read at the old version cannot write the old ciphertext back.
                    .values(sealed_token=new, version=BotRow.version + 1)
                    .execution_options(synchronize_session=False)
                )
                if session.execute(statement).rowcount == 1:  # type: ignore[attr-defined]
                    report.rewrapped += 1
                else:
                    report.conflicts += 1
        logger.info("rewrap batch committed", extra={"through_bot_id": last_id, **asdict(report)})


def main(settings: RegistrySettings, batch_size: int = 100) -> int:
    from tgm.grpc_runtime.channels import VAULT_SERVER_NAME, open_channel
    from tgm.services.botregistry.adapters.sql import make_engine, make_session_factory
    from tgm.vault_client.client import GrpcTokenVault

    engine = make_engine(settings.db_url)
    try:
        with open_channel(settings.vault_addr, server_name=VAULT_SERVER_NAME) as channel:
            report = rewrap_all(make_session_factory(engine), GrpcTokenVault(channel), batch_size)
    finally:
        engine.dispose()
    print(json.dumps(asdict(report)))
    if report.stale:
        logger.error("rewrap incomplete: rows still under an old key version", extra={"stale": report.stale})
    return exit_code(report)
