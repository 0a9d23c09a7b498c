"""The vault's wire values for the domain's secret kinds and decrypt purposes: one table for client and server."""

from __future__ import annotations

from typing import Final

from libs.domain.ports import DecryptPurpose, SecretKind
from tgm.vault.v1 import vault_pb2

KINDS: Final = {
    SecretKind.BOT_TOKEN: vault_pb2.SECRET_KIND_BOT_TOKEN,
    SecretKind.INBOUND_TEXT: vault_pb2.SECRET_KIND_INBOUND_TEXT,
}
PURPOSES: Final = {
    DecryptPurpose.MANAGE: vault_pb2.PURPOSE_MANAGE,
    DecryptPurpose.SEND: vault_pb2.PURPOSE_SEND,
}
