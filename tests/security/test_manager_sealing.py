"""The gateway seals every token-shaped string of a manager-bot update; the envelope on the queue holds none."""

from __future__ import annotations

import json

import pytest

from tests.support.fake_vault import InMemoryTokenVault
from tgm.domain.errors import SecretRejected
from tgm.domain.ports import DecryptPurpose, SecretKind
from tgm.domain.redaction import REDACTED
from tgm.domain.sealing import MAX_SEALED_PER_UPDATE, placeholders_in
from tgm.domain.updates import UpdateEnvelope
from tgm.services.gateway.api.sealing import seal_manager_update

TOKEN = "1234567890:AAFakeTokenForTestsOnly_abcdefghijklmnop"
OTHER = "9876543210:BBAnotherFakeBotTokenForTests_zyxwvut1"


def test_every_token_shaped_string_is_sealed_anywhere_in_the_update() -> None:
    vault = InMemoryTokenVault()
    update = {
        "update_id": 1,
        "message": {
            "from": {"id": 501, "is_bot": False, "first_name": "A"},
            "chat": {"id": 501, "type": "private"},
            "text": f"/addbot {TOKEN} and {OTHER}",
            "reply_to_message": {"text": f"old {TOKEN}"},
            "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
        },
    }
    sealed_update, sealed = seal_manager_update(vault, "mgr-1", update)
    envelope = UpdateEnvelope("mgr-1", 1, 0.0, "r", sealed_update, sealed)
    wire = json.dumps(UpdateEnvelope.from_message(envelope.to_message()).to_message())
    assert TOKEN not in wire and OTHER not in wire
    assert TOKEN.split(":")[1] not in wire
    assert placeholders_in(sealed_update["message"]["text"]) == [0, 1]
    import base64

    opened = [
        vault.decrypt("mgr-1:501:501", SecretKind.INBOUND_TEXT, "manage", base64.b64decode(item))  # type: ignore[arg-type]
        for item in sealed
    ]
    assert opened == [TOKEN, OTHER, TOKEN]
    # Bound to the sender and chat: under the bare manager id, or another sender, nothing opens.
    for ref in ("mgr-1", "mgr-1:502:502", "mgr-1:501:502"):
        with pytest.raises(SecretRejected):
            vault.decrypt(ref, SecretKind.INBOUND_TEXT, DecryptPurpose.MANAGE, base64.b64decode(sealed[0]))


def test_nothing_to_seal_leaves_the_update_alone() -> None:
    update = {"update_id": 1, "message": {"text": "/mybots 12:abc"}}
    assert seal_manager_update(InMemoryTokenVault(), "mgr-1", update) == (update, ())


def test_beyond_the_cap_tokens_are_masked_not_sealed_and_the_update_still_goes_on() -> None:
    # Issue 11, item 9: the update used to be dropped, so the manager never deleted the message from the chat.
    vault = InMemoryTokenVault()
    update = {"update_id": 1, "message": {"text": " ".join([TOKEN] * (MAX_SEALED_PER_UPDATE + 3))}}
    sealed_update, sealed = seal_manager_update(vault, "mgr-1", update)
    text = sealed_update["message"]["text"]
    assert len(sealed) == MAX_SEALED_PER_UPDATE, "the vault calls per update stay bounded"
    assert placeholders_in(text) == list(range(MAX_SEALED_PER_UPDATE))
    assert text.count(REDACTED) == 3 and TOKEN not in text
