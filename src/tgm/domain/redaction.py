"""Masks token-shaped text. Pure: used by log filters, exception scrubbing and the gateway."""

import re

# Stricter than BotToken's acceptance rule on purpose: masks real tokens without eating ordinary words. The colon
# also in the forms it takes inside URLs (%3A, %253A once more encoded) and JSON (\u003a), so an encoded token in
# a logged URL or an escaped document is masked too.
_COLON = r"(?::|%(?:25)?3[Aa]|\\u003[Aa])"
TOKEN_SHAPED = re.compile(r"\d{5,12}" + _COLON + r"[A-Za-z0-9_-]{30,}")
REDACTED = "[REDACTED]"
# A password in a connection URL (redis://user:password@host, postgresql://user:password@host): the user stays.
# Up to the last "@" before a space or quote, so a password holding "/" or "@" is masked whole.
URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*):[^\s\"']*@")


def redact(text: str) -> str:
    """Returns `text` with every token-shaped substring and every password in a URL replaced by a marker."""
    return URL_PASSWORD.sub(rf"\g<head>:{REDACTED}@", TOKEN_SHAPED.sub(REDACTED, text))


def contains_token(text: str) -> bool:
    return TOKEN_SHAPED.search(text) is not None
