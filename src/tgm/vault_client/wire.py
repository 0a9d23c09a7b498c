"""The vault API's wire contract shared by its server and clients: kinds, purposes, request limits, and the key
status reply (metadata only: no key byte reaches this module)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Final

from tgm.domain.ports import DecryptPurpose, SecretKind
from tgm.vault.v1 import vault_pb2

KINDS: Final = {
    SecretKind.BOT_TOKEN: vault_pb2.SECRET_KIND_BOT_TOKEN,
    SecretKind.INBOUND_TEXT: vault_pb2.SECRET_KIND_INBOUND_TEXT,
}
PURPOSES: Final = {
    DecryptPurpose.MANAGE: vault_pb2.PURPOSE_MANAGE,
    DecryptPurpose.SEND: vault_pb2.PURPOSE_SEND,
}
# The other way, for the server: UNSPECIFIED and unknown numbers are not in them.
KIND_OF: Final = {wire: kind for kind, wire in KINDS.items()}
PURPOSE_OF: Final = {wire: purpose for purpose, wire in PURPOSES.items()}
# The vault refuses requests beyond these (src/tgm/services/vault/README.md); the in-memory fake enforces the same.
MAX_BOT_REF_CHARS: Final = 64
MAX_PLAINTEXT_BYTES: Final = 4096


def bot_ref_ok(bot_ref: str) -> bool:
    return bool(bot_ref) and len(bot_ref) <= MAX_BOT_REF_CHARS and bot_ref.isprintable()


def key_status_response(
    primary: int, versions: Iterable[tuple[int, timedelta, bool]], rotation_due: bool, rotation_period: timedelta
) -> vault_pb2.KeyStatusResponse:
    """KeyStatus's reply from the primary version, each version's (number, age, retired) and the rotation state."""
    return vault_pb2.KeyStatusResponse(
        primary_version=primary,
        versions=[
            vault_pb2.KeyVersionStatus(
                version=version, age_seconds=int(age.total_seconds()), primary=version == primary, retired=retired
            )
            for version, age, retired in versions
        ],
        rotation_due=rotation_due,
        rotation_period_seconds=int(rotation_period.total_seconds()),
    )
