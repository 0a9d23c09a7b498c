"""A small version of the real server's HTML parse_mode check: known tags, balanced, entities escaped."""

from __future__ import annotations

import html
import re

from tgm.tools.telegram_emulator.errors import bad_request

_ALLOWED = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "tg-spoiler",
        "span",
        "blockquote",
        "tg-emoji",
        "tg-time",
    }
)
_TOKEN = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)([^<>]*)>|<|&(#\d+|#x[0-9A-Fa-f]+|lt|gt|amp|quot);|&")


def check_html(text: str) -> str:
    """Returns the text without markup, or raises the real server's 'can't parse entities' error."""
    stack: list[str] = []
    plain: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        plain.append(text[position : match.start()])
        position = match.end()
        token = match.group(0)
        offset = len(text[: match.start()].encode("utf-8"))
        if match.group(2):
            closing, name = match.group(1) == "/", match.group(2).lower()
            if not closing:
                if name not in _ALLOWED:
                    raise bad_request(f'can\'t parse entities: Unsupported start tag "{name}" at byte offset {offset}')
                stack.append(name)
            else:
                if not stack or stack[-1] != name:
                    raise bad_request(
                        f'can\'t parse entities: Unmatched end tag at byte offset {offset}, expected "</{stack[-1]}>", '
                        f'found "</{name}>"'
                        if stack
                        else f"can't parse entities: Unexpected end tag at byte offset {offset}"
                    )
                stack.pop()
        elif token == "<":
            raise bad_request(f'can\'t parse entities: Unsupported start tag "" at byte offset {offset}')
        elif token == "&":
            raise bad_request(f"can't parse entities: Character entity expected at byte offset {offset}")
        else:
            plain.append(html.unescape(token))
    plain.append(text[position:])
    if stack:
        raise bad_request(f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\"")
    return "".join(plain)
