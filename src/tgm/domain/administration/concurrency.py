"""Optimistic concurrency for the registry's read-modify-write use cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tgm.domain.administration.register_bot import MAX_ATTEMPTS
from tgm.domain.errors import ConcurrentUpdate

_T = TypeVar("_T")


def retrying(change: Callable[[], _T]) -> _T:
    """Runs a read-modify-write again when its compare-and-set lost to a concurrent writer (MAX_ATTEMPTS in all)."""
    for _attempt in range(MAX_ATTEMPTS - 1):
        try:
            return change()
        except ConcurrentUpdate:
            continue
    return change()
