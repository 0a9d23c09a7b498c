"""Masks token-shaped text. Pure: used by log filters, exception scrubbing and the gateway."""

import re

# Stricter than BotToken's acceptance rule on purpose: masks real tokens without eating ordinary words. The colon
# also in the forms it takes inside URLs (%3A, %253A once more encoded) and JSON (\u003a), so an encoded token in
# a logged URL or an escaped document is masked too.
_COLON = r"(?::|%(?:25)?3[Aa]|\\u003[Aa])"
TOKEN_SHAPED = re.compile(r"\d{5,12}" + _COLON + r"[A-Za-z0-9_-]{30,}")
REDACTED = "[REDACTED]"


def redact(text: str) -> str:
    """Returns `text` with every token-shaped substring replaced by a marker."""
    return TOKEN_SHAPED.sub(REDACTED, text)


def contains_token(text: str) -> bool:
    return TOKEN_SHAPED.search(text) is not None
