"""Conversation states: what the manager bot waits for from one user in one chat (kept by a ConversationStore)."""

from __future__ import annotations

AWAIT_TOKEN = "await_token"  # noqa: S105 - a state name
AWAIT_WELCOME = "await_welcome:"
AWAIT_COMMAND = "await_command:"
AWAIT_API = "await_api:"
AWAIT_BROADCAST = "await_broadcast:"
