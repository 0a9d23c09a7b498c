"""Issue 11, item 5: the gateway's integrity tag on updates stored in Redis, and the mailbox decoding that drops an
item whose tag is missing or wrong."""

from __future__ import annotations

import json

import pytest

from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.envelope_signing import EnvelopeSigner, missing_key_problem, signer_from_key, strip_tag
from tgm.messaging.mailbox import decode, encode

KEY = b"k" * 32
ENVELOPE = UpdateEnvelope(
    "bot-1", 42, 1.5, "req", {"update_id": 42, "message": {"chat": {"id": 7}, "from": {"id": 7}, "text": "/start"}}
)


def test_a_tagged_item_is_still_one_json_object_and_opens_to_the_same_envelope() -> None:
    signer = EnvelopeSigner(KEY)
    raw = encode(ENVELOPE, signer)
    assert raw.startswith(b'{"sig":"') and b'"update_id":42' in raw
    assert json.loads(raw)["update_id"] == 42, "the Lua scripts read the update id from the stored item"
    assert decode(raw, signer).envelope == ENVELOPE


@pytest.mark.parametrize(
    "forge",
    [
        lambda raw: raw.replace(b"/start", b"/addbx"),  # altered content
        lambda raw: raw.replace(b'"from":{"id":7}', b'"from":{"id":8}'),  # impersonation
        lambda raw: encode(ENVELOPE),  # no tag at all (written by someone without the key)
        lambda raw: encode(ENVELOPE, EnvelopeSigner(b"x" * 32)),  # tagged under another key
        lambda raw: raw[:8] + b"0" * 64 + raw[72:],  # a made-up tag
    ],
)
def test_a_forged_or_altered_item_has_no_envelope(forge: object) -> None:
    signer = EnvelopeSigner(KEY)
    raw = forge(encode(ENVELOPE, signer))  # type: ignore[operator]
    item = decode(raw, signer)
    assert item.envelope is None and item.raw == raw, "dropped by the drain as it is stored (so it can be popped)"


def test_without_a_key_a_development_run_reads_tagged_and_untagged_items() -> None:
    raw = encode(ENVELOPE, EnvelopeSigner(KEY))
    assert decode(raw).envelope == ENVELOPE
    assert decode(encode(ENVELOPE)).envelope == ENVELOPE
    assert strip_tag(b'{"a":1}') == b'{"a":1}'


def test_keys_shorter_than_32_bytes_and_missing_keys_are_refused_unless_in_development() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        EnvelopeSigner(b"short")
    assert signer_from_key("") is None
    assert missing_key_problem("", insecure_dev=False) is not None
    assert missing_key_problem("", insecure_dev=True) is None
    assert "32 bytes" in (missing_key_problem("short", insecure_dev=True) or "")
    assert missing_key_problem("k" * 32, insecure_dev=False) is None


def test_only_non_empty_objects_can_be_sealed() -> None:
    signer = EnvelopeSigner(KEY)
    with pytest.raises(ValueError):
        signer.seal(b"{}")
    with pytest.raises(ValueError):
        signer.seal(b"[1]")
