"""The gateway's manager-bot path: token-shaped text is sealed (bound to sender and chat) before anything is queued."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from dependency_injector import providers
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.gateway.test_webhook import FakeQueue
from tgm.domain.bots import hash_webhook_secret
from tgm.domain.errors import SecretRejected, VaultUnavailable
from tgm.domain.ports import DecryptPurpose, Route, SecretKind
from tgm.domain.sealing import inbound_text_ref
from tgm.services.gateway.app import create_app
from tgm.services.gateway.container import GatewayContainer
from tgm.services.gateway.settings import GatewaySettings

TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijklmnop"
SECRET_MGR = "secret-of-the-manager_" + "m" * 20
SECRET_BOT = "secret-of-another-bot_" + "b" * 20
PUBLIC_MGR = "pubMgr_abcdefghijklmn"
PUBLIC_BOT = "pubBot_abcdefghijklmn"
ADMIN = 501


def _update(text: str, sender: int = ADMIN, chat: int = ADMIN) -> dict[str, object]:
    return {
        "update_id": 7,
        "message": {
            "message_id": 3,
            "from": {"id": sender, "is_bot": False, "first_name": "A"},
            "chat": {"id": chat, "type": "private"},
            "text": text,
        },
    }


class Routes:
    """No cache: every lookup is a blocking `route_for`, and a refresh looks again."""

    def cached(self, public_id: str) -> tuple[bool, Route | None]:
        return False, None

    def refreshed_route(self, public_id: str) -> Route | None:
        return self.route_for(public_id)

    def route_for(self, public_id: str) -> Route | None:
        return {
            PUBLIC_MGR: Route("mgr-bot", hash_webhook_secret(SECRET_MGR), accepts_updates=True, is_manager=True),
            PUBLIC_BOT: Route("some-bot", hash_webhook_secret(SECRET_BOT), accepts_updates=True),
        }.get(public_id)


class CountingVault(InMemoryTokenVault):
    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.encrypts: list[str] = []

    def encrypt(self, bot_ref: str, kind: SecretKind, plaintext: str) -> bytes:
        if self.down:
            raise VaultUnavailable("vault Encrypt failed: UNAVAILABLE")
        self.encrypts.append(bot_ref)
        return super().encrypt(bot_ref, kind, plaintext)


class Gateway:
    def __init__(self) -> None:
        self.queue = FakeQueue()
        self.vault = CountingVault()
        container = GatewayContainer(settings=GatewaySettings(), broker=StubBroker())
        container.route_directory.override(providers.Object(Routes()))
        container.update_queue.override(providers.Object(self.queue))
        container.vault.override(providers.Object(self.vault))
        self.client = TestClient(create_app(container))

    def post(self, public_id: str, secret: str, body: object):  # type: ignore[no-untyped-def]
        return self.client.post(
            f"/webhook/{public_id}",
            headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
            content=json.dumps(body).encode(),
        )


@pytest.fixture
def gw() -> Iterator[Gateway]:
    gateway = Gateway()
    with gateway.client:
        yield gateway


def test_the_enqueued_manager_envelope_holds_no_token(gw: Gateway) -> None:
    assert gw.post(PUBLIC_MGR, SECRET_MGR, _update(f"/addbot {TOKEN}")).status_code == 200
    [envelope] = gw.queue.envelopes
    wire = json.dumps(envelope.to_message())
    assert TOKEN not in wire and TOKEN.split(":")[1] not in wire
    assert envelope.update["message"]["text"] == "/addbot [sealed:0]"
    [sealed] = envelope.sealed_texts
    ciphertext = base64.b64decode(sealed)
    # Bound to the manager bot, the sender and the chat: only that claim opens it.
    ref = inbound_text_ref("mgr-bot", ADMIN, ADMIN)
    assert gw.vault.encrypts == [ref]
    assert gw.vault.decrypt(ref, SecretKind.INBOUND_TEXT, DecryptPurpose.MANAGE, ciphertext) == TOKEN
    with pytest.raises(SecretRejected):
        gw.vault.decrypt(
            inbound_text_ref("mgr-bot", 502, 502), SecretKind.INBOUND_TEXT, DecryptPurpose.MANAGE, ciphertext
        )


def test_a_message_with_too_many_tokens_still_reaches_the_manager_so_it_is_deleted(gw: Gateway) -> None:
    text = " ".join([TOKEN] * 12)
    assert gw.post(PUBLIC_MGR, SECRET_MGR, _update(text)).status_code == 200
    [envelope] = gw.queue.envelopes  # enqueued, not dropped: the manager deletes messages that held tokens
    assert len(envelope.sealed_texts) == 8 and len(gw.vault.encrypts) == 8
    wire = json.dumps(envelope.to_message())
    assert TOKEN not in wire and TOKEN.split(":")[1] not in wire


def test_vault_down_is_503_and_nothing_is_enqueued(gw: Gateway) -> None:
    gw.vault.down = True
    response = gw.post(PUBLIC_MGR, SECRET_MGR, _update(f"/addbot {TOKEN}"))
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert gw.queue.envelopes == []


def test_other_bots_updates_are_not_sealed(gw: Gateway) -> None:
    assert gw.post(PUBLIC_BOT, SECRET_BOT, _update(f"look {TOKEN}")).status_code == 200
    [envelope] = gw.queue.envelopes
    assert envelope.sealed_texts == () and gw.vault.encrypts == []
    assert envelope.update["message"]["text"] == f"look {TOKEN}"


def test_a_manager_update_without_tokens_goes_through_unsealed(gw: Gateway) -> None:
    assert gw.post(PUBLIC_MGR, SECRET_MGR, _update("/mybots")).status_code == 200
    [envelope] = gw.queue.envelopes
    assert envelope.sealed_texts == () and gw.vault.encrypts == []


def test_long_ids_still_fit_the_vaults_bot_ref() -> None:
    ref = inbound_text_ref("0" * 36, 9_999_999_999_999_999, -1_009_999_999_999_999)
    assert len(ref) <= 64 and ref.isprintable()
    assert ref != inbound_text_ref("0" * 36, 9_999_999_999_999_998, -1_009_999_999_999_999)
