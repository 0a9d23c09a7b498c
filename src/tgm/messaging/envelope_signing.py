"""Integrity of the updates the gateway hands to the dispatchers through Redis (issue 11, item 5).

Whoever can write to Redis could otherwise forge updates — manager-bot commands as any Telegram user. The gateway
tags each stored envelope with an HMAC-SHA256 under ENVELOPE_SIGNING_KEY, a key only it and the dispatchers hold;
a dispatcher drops (and logs) an item whose tag is missing or does not match.

The tag goes in front of the JSON object as its first member, `{"sig":"<64 hex>",` + the rest of the encoded
envelope, so the stored item stays one JSON object (the dispatcher's Lua scripts read its update_id with cjson) and
the tag covers the exact bytes the gateway wrote: no re-serialisation, nothing to canonicalise.
"""

from __future__ import annotations

import hmac
import re

MIN_KEY_BYTES = 32
_PREFIX = b'{"sig":"'
_TAGGED = re.compile(rb'\{"sig":"([0-9a-f]{64})",')


class EnvelopeSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"ENVELOPE_SIGNING_KEY must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def _tag(self, body: bytes) -> bytes:
        return hmac.digest(self._key, body, "sha256").hex().encode("ascii")  # one-shot C HMAC: ~3× hmac.new

    def seal(self, body: bytes) -> bytes:
        """`body` is an encoded JSON object with at least one member."""
        if not body.startswith(b"{") or body.startswith(b"{}"):
            raise ValueError("only a non-empty JSON object can be sealed")
        return _PREFIX + self._tag(body) + b'",' + body[1:]

    def open(self, raw: bytes) -> bytes | None:
        """The encoded envelope if `raw` carries a valid tag; None if the tag is missing or wrong."""
        match = _TAGGED.match(raw)
        if match is None:
            return None
        body = b"{" + raw[match.end() :]
        return body if hmac.compare_digest(match.group(1), self._tag(body)) else None


def strip_tag(raw: bytes) -> bytes:
    """The envelope without its tag, unchecked: only for a development run without a key (TGM_INSECURE_DEV)."""
    match = _TAGGED.match(raw)
    return raw if match is None else b"{" + raw[match.end() :]


def _revealed(key: object) -> str:
    reveal = getattr(key, "get_secret_value", None)
    return str(reveal() if callable(reveal) else key or "")


def signer_from_key(key: object) -> EnvelopeSigner | None:
    """The signer for ENVELOPE_SIGNING_KEY (a str or pydantic SecretStr); None when it is empty (development only:
    the services refuse to start on Redis without it unless TGM_INSECURE_DEV=1)."""
    text = _revealed(key)
    return EnvelopeSigner(text.encode()) if text else None


def missing_key_problem(key: object, *, insecure_dev: bool) -> str | None:
    """Why a Redis-mode gateway or dispatcher must not start with this ENVELOPE_SIGNING_KEY, or None."""
    text = _revealed(key)
    if not text:
        if insecure_dev:
            return None
        return (
            "ENVELOPE_SIGNING_KEY is required on Redis (it proves the updates in Redis came from the gateway); "
            "TGM_INSECURE_DEV=1 allows a development run without it"
        )
    if len(text.encode()) < MIN_KEY_BYTES:
        return f"ENVELOPE_SIGNING_KEY must be at least {MIN_KEY_BYTES} bytes"
    return None
