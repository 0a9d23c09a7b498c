"""Signed callback_data for the manager bot's inline buttons.

Layout (39 bytes → 52 chars of unpadded base64url, under Telegram's 64-byte limit):

    version (1, = 2) | key id (1) | action (1) | bot ref (16, a UUID; zeros when none) | issued at (4, unix s)
    | nonce (4) | MAC (12)

The MAC is HMAC-SHA256 with CALLBACK_SIGNING_KEY (the dispatcher's own key, never a vault key) over
``user id | chat id | payload``: the pressing user and the chat are bound without travelling in the button.
The key id (a byte derived from the key) names the key that signed: during a rotation the dispatchers sign with the
new key and still accept buttons signed with the previous ones (CALLBACK_SIGNING_KEY_PREVIOUS), so open buttons keep
working until they expire. Version-1 buttons (no key id, 38 bytes) are still read, with any configured key.
A token is only a claim about *which* button was pressed; the registry still checks that the bot is the
presser's. Verification failures carry no reason to the user (one catalogue reply for all of them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from tgm.domain.ports import Clock

VERSION = 2
LEGACY_VERSION = 1
MAC_BYTES = 12
_BODY = struct.Struct(">BBB16sI4s")
_LEGACY_BODY = struct.Struct(">BB16sI4s")
_PAGE = struct.Struct(">I12x")
TOKEN_BYTES = _BODY.size + MAC_BYTES
LEGACY_TOKEN_BYTES = _LEGACY_BODY.size + MAC_BYTES
MAX_CALLBACK_DATA_BYTES = 64
MIN_KEY_BYTES = 32
# A button pressed a little "before" it was issued (clock skew between dispatcher processes) is tolerated.
_MAX_CLOCK_SKEW_SECONDS = 30


class CallbackAction(IntEnum):
    """What a button does. Codes are part of the wire format: never renumber."""

    LIST = 1
    DETAILS = 2
    STATS = 3
    DISABLE = 4
    ENABLE = 5
    ROTATE = 6
    DELETE_ASK = 7
    DELETE_DO = 8
    CANCEL = 9
    REAUTH_ROTATE = 10
    REAUTH_DELETE = 11
    SET_WELCOME = 12
    ADD_COMMAND = 13
    ADD_API_COMMAND = 14
    # /mybots page N: the bot ref field carries the page number instead of a bot id.
    LIST_PAGE = 15
    # A managed bot's CAPTCHA button (src/tgm/domain/captcha.py): the bot ref field carries the option's number.
    CAPTCHA = 16
    # /subscribers: the bot's subscribers as a CSV document.
    EXPORT_SUBSCRIBERS = 17
    # /broadcast: start the previewed broadcast / stop it (the bot ref field carries the broadcast's id).
    BROADCAST_CONFIRM = 18
    BROADCAST_CANCEL = 19
    # A hosted bot's feedback inbox (src/tgm/domain/inbox.py): block / unblock the sender of a delivered message. Codes
    # from 40 leave room for the manager's own.
    INBOX_BLOCK = 40
    INBOX_UNBLOCK = 41
    # Co-admins (issue 15). INVITE and ADMINS carry a bot id; REVOKE_ADMIN a membership id and REVOKE_INVITE an
    # invite id in the bot ref field (both UUIDs; the registry checks that the presser owns their bot).
    INVITE = 22
    ADMINS = 23
    REVOKE_ADMIN = 24
    REVOKE_INVITE = 25


_NUMBERED = frozenset({CallbackAction.LIST_PAGE, CallbackAction.CAPTCHA})  # a number instead of a bot ref


def key_id(key: bytes) -> int:
    """The byte a button carries to name the key that signed it (derived, so nothing more to configure)."""
    return hashlib.sha256(b"tgm callback signing key id:" + key).digest()[0]


@dataclass(frozen=True)
class CallbackClaim:
    action: CallbackAction
    bot_id: str | None
    issued_at: int
    page: int = 0
    token_id: str = ""  # the token's MAC (hex): unique per issued button, for one-time use


class CallbackTokens:
    """Signs and verifies callback_data. Pure: the key and the clock are given."""

    def __init__(self, key: bytes, clock: Clock, ttl_seconds: int = 900, previous_keys: Sequence[bytes] = ()) -> None:
        """`key` signs; `key` and `previous_keys` (a rotation in progress) verify."""
        for candidate in (key, *previous_keys):
            if len(candidate) < MIN_KEY_BYTES:
                raise ValueError(f"the callback signing key must have at least {MIN_KEY_BYTES} bytes")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._key = key
        self._key_id = key_id(key)
        self._verifying: tuple[bytes, ...] = (key, *(k for k in previous_keys if k != key))
        self._clock = clock
        self._ttl = ttl_seconds

    def __repr__(self) -> str:
        return f"CallbackTokens(ttl={self._ttl}s)"

    @property
    def ttl_seconds(self) -> int:
        return self._ttl

    @staticmethod
    def _mac(key: bytes, user_id: int, chat_id: int, body: bytes) -> bytes:
        bound = struct.pack(">qq", user_id, chat_id) + body
        return hmac.new(key, bound, hashlib.sha256).digest()[:MAC_BYTES]

    def _signed_by_one_of(self, keys: Sequence[bytes], mac: bytes, user_id: int, chat_id: int, body: bytes) -> bool:
        found = False
        for candidate in keys:  # every candidate is tried: the time taken does not tell which key matched
            found |= hmac.compare_digest(mac, self._mac(candidate, user_id, chat_id, body))
        return found

    def sign(self, action: CallbackAction, bot_id: str | None, user_id: int, chat_id: int, page: int = 0) -> str:
        if action in _NUMBERED:
            ref = _PAGE.pack(max(0, min(page, 0xFFFFFFFF)))
        else:
            ref = uuid.UUID(bot_id).bytes if bot_id else bytes(16)
        issued_at = int(self._clock.now().timestamp())
        body = _BODY.pack(VERSION, self._key_id, int(action), ref, issued_at, secrets.token_bytes(4))
        mac = self._mac(self._key, user_id, chat_id, body)
        token = base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode("ascii")
        assert len(token) <= MAX_CALLBACK_DATA_BYTES
        return token

    def verify(self, data: str, user_id: int, chat_id: int) -> CallbackClaim | None:
        """The claim when `data` is an untampered, unexpired token issued to this user in this chat; else None."""
        if not data or len(data) > MAX_CALLBACK_DATA_BYTES or not data.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) == TOKEN_BYTES and raw[0] == VERSION:
            body, mac = raw[: _BODY.size], raw[_BODY.size :]
            _version, kid, action_code, ref, issued_at, _nonce = _BODY.unpack(body)
            keys = [k for k in self._verifying if key_id(k) == kid]
        elif len(raw) == LEGACY_TOKEN_BYTES and raw[0] == LEGACY_VERSION:
            body, mac = raw[: _LEGACY_BODY.size], raw[_LEGACY_BODY.size :]
            _version, action_code, ref, issued_at, _nonce = _LEGACY_BODY.unpack(body)
            keys = list(self._verifying)
        else:
            return None
        if not keys or not self._signed_by_one_of(keys, mac, user_id, chat_id, body):
            return None
        now = int(self._clock.now().timestamp())
        if now - issued_at > self._ttl or issued_at - now > _MAX_CLOCK_SKEW_SECONDS:
            return None
        try:
            action = CallbackAction(action_code)
        except ValueError:
            return None
        if action in _NUMBERED:
            page = _PAGE.unpack(ref)[0]
            return CallbackClaim(action=action, bot_id=None, issued_at=issued_at, page=page, token_id=mac.hex())
        bot_id = str(uuid.UUID(bytes=ref)) if ref != bytes(16) else None
        return CallbackClaim(action=action, bot_id=bot_id, issued_at=issued_at, token_id=mac.hex())
