"""A broadcast's body: the admin's message (Telegram's text and its `entities`) as safe HTML, the look it is stored
and sent in (ManagerView.broadcast_body stores it; TelegramBroadcastView sends it with parse mode HTML)."""

from __future__ import annotations

import html
from typing import Any

_SAFE_LINK_SCHEMES = ("http://", "https://", "tg://")

_SIMPLE_TAGS = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strikethrough": "s",
    "spoiler": "tg-spoiler",
    "code": "code",
    "blockquote": "blockquote",
}


def _open_tag(entity: dict[str, Any]) -> tuple[str, str] | None:
    """(opening, closing) HTML for an entity, or None for one shown as plain text (mentions, hashtags, URLs…)."""
    kind = entity.get("type")
    if kind in _SIMPLE_TAGS:
        tag = _SIMPLE_TAGS[str(kind)]
        return f"<{tag}>", f"</{tag}>"
    if kind == "expandable_blockquote":
        return "<blockquote expandable>", "</blockquote>"
    if kind == "pre":
        language = entity.get("language")
        if isinstance(language, str) and language.replace("-", "").replace("_", "").isalnum():
            return f'<pre><code class="language-{language}">', "</code></pre>"
        return "<pre>", "</pre>"
    if kind == "text_link":
        url = entity.get("url")
        if isinstance(url, str) and url.lower().startswith(_SAFE_LINK_SCHEMES):
            return f'<a href="{html.escape(url, quote=True)}">', "</a>"
        return None
    if kind == "text_mention":
        user = entity.get("user")
        if isinstance(user, dict) and isinstance(user.get("id"), int):
            return f'<a href="tg://user?id={int(user["id"])}">', "</a>"
    return None


def html_from_entities(text: str, entities: object) -> str:
    """Telegram's message text and its `entities` (offsets in UTF-16 code units) as HTML for parse_mode HTML.

    The text is escaped; only formatting entities become tags (whitelisted, link schemes http/https/tg), so
    nothing the sender typed can inject markup. Entities that cross each other are closed and reopened.
    """
    units = text.encode("utf-16-le")
    length = len(units) // 2
    spans: list[tuple[int, int, str, str]] = []
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict):
            continue
        offset, size = entity.get("offset"), entity.get("length")
        tags = _open_tag(entity)
        if tags is None or not isinstance(offset, int) or not isinstance(size, int) or size <= 0 or offset < 0:
            continue
        end = min(offset + size, length)
        if offset < end:
            spans.append((offset, end, *tags))
    spans.sort(key=lambda span: (span[0], -span[1]))

    def piece(start: int, stop: int) -> str:
        return html.escape(units[2 * start : 2 * stop].decode("utf-16-le", errors="replace"), quote=False)

    out: list[str] = []
    stack: list[tuple[int, int, str, str]] = []
    boundaries = sorted({0, length, *(s[0] for s in spans), *(s[1] for s in spans)})
    index = 0
    for here, after in zip(boundaries, [*boundaries[1:], length], strict=True):
        # Close what ends here and only what was opened inside it (reopening those that go on), then open what
        # starts here. Entities outside the deepest one ending here stay open: nesting is kept, not flattened.
        ending = [depth for depth, span in enumerate(stack) if span[1] == here]
        if ending:
            reopen = []
            while len(stack) > ending[0]:
                span = stack.pop()
                out.append(span[3])
                if span[1] > here:
                    reopen.append(span)
            for span in reversed(reopen):
                out.append(span[2])
                stack.append(span)
        while index < len(spans) and spans[index][0] == here:
            out.append(spans[index][2])
            stack.append(spans[index])
            index += 1
        if after > here:
            out.append(piece(here, after))
    while stack:
        out.append(stack.pop()[3])
    return "".join(out)
