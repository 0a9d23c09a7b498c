"""Errors raised by the registry's repositories (both adapters raise the same ones)."""

from tgm.domain.errors import ConcurrentUpdate


class DuplicateBot(ConcurrentUpdate):
    """Another row already has this telegram_bot_id or public_id (e.g. a concurrent registration)."""
