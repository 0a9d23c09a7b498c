"""Replies as Telegram text: HTML with every value escaped, or plain (button labels, notices, captions)."""

from __future__ import annotations

import html
from collections.abc import Callable

from tgm.domain.messages import render
from tgm.domain.view import Joined, Prerendered, Reply, Text, Value

PARSE_MODE = "HTML"


def escape(value: object) -> str:
    """A value shown inside an HTML message: its text, with <, > and & escaped."""
    return html.escape(str(value), quote=False)


def as_html(reply: Reply, lang: str | None) -> str:
    """The reply in HTML: catalogue texts as written (they are valid HTML), values escaped."""
    if isinstance(reply, Prerendered):
        return reply.text
    return _rendered(reply, lang, escape)


def as_plain(text: Value | Prerendered, lang: str | None) -> str:
    """The text where Telegram reads no markup (no parse mode, button labels, notices, captions): values as they
    are."""
    if isinstance(text, Prerendered):
        return text.text
    return _rendered(text, lang, str)


def _rendered(value: Value, lang: str | None, shown: Callable[[object], str]) -> str:
    if isinstance(value, Text):
        return render(value.key, lang, **{name: _rendered(part, lang, shown) for name, part in value.values.items()})
    if isinstance(value, Joined):
        return value.separator.join(_rendered(part, lang, shown) for part in value.parts)
    return shown(value)
