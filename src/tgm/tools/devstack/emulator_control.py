"""A small client for the Telegram emulator's control API (play a user, read a chat)."""

from __future__ import annotations

from typing import Any

import httpx


class EmulatorControl:
    def __init__(self, base_url: str) -> None:
        self._http = httpx.Client(base_url=f"{base_url.rstrip('/')}/_emulator", timeout=10.0)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def create_bot(self, username: str, first_name: str = "", can_manage_bots: bool = False) -> dict[str, Any]:
        """Returns {id, username, token}."""
        body = {"username": username, "first_name": first_name or username, "can_manage_bots": can_manage_bots}
        return dict(self._call("POST", "/bots", json=body))

    def bots(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/bots"))

    def revoke(self, bot_id: int) -> None:
        self._call("POST", f"/bots/{bot_id}/revoke")

    def send_text(
        self,
        bot_id: int,
        user: dict[str, Any],
        text: str,
        chat_id: int | None = None,
        reply_to_message_id: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"user": user, "text": text}
        if chat_id is not None:
            body["chat_id"] = chat_id
        if reply_to_message_id is not None:
            body["reply_to_message_id"] = reply_to_message_id
        return dict(self._call("POST", f"/bots/{bot_id}/messages", json=body))

    def press(self, bot_id: int, user: dict[str, Any], chat_id: int, message_id: int, data: str) -> dict[str, Any]:
        body = {"user": user, "chat_id": chat_id, "message_id": message_id, "data": data}
        return dict(self._call("POST", f"/bots/{bot_id}/callbacks", json=body))

    def create_managed_bot(self, manager_id: int, user: dict[str, Any], username: str) -> dict[str, Any]:
        """The user creates a bot through the manager bot (request_managed_bot); the manager gets `managed_bot`."""
        body = {"user": user, "username": username}
        return dict(self._call("POST", f"/bots/{manager_id}/managed_bots", json=body))

    def transfer_managed_bot(self, manager_id: int, bot_id: int, user: dict[str, Any]) -> dict[str, Any]:
        """The managed bot's owner changes in Telegram; the manager gets a `managed_bot` update naming the new one."""
        return dict(self._call("POST", f"/bots/{manager_id}/managed_bots/{bot_id}/owner", json={"user": user}))

    def callbacks(self, bot_id: int) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/bots/{bot_id}/callbacks"))

    def chat(self, bot_id: int, chat_id: int) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/bots/{bot_id}/chats/{chat_id}/messages"))

    def bot_messages(self, bot_id: int, chat_id: int) -> list[dict[str, Any]]:
        """Only what the bot itself sent to the chat."""
        return [m for m in self.chat(bot_id, chat_id) if m.get("from_bot", True)]

    def calls(self, bot_id: int) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/bots/{bot_id}/calls"))

    def fail_next(self, method: str, count: int, delay_seconds: float = 0.0) -> dict[str, int]:
        """The next `count` calls of Bot API `method` answer 500 after `delay_seconds`, without being performed."""
        body = {"method": method, "count": count, "delay_seconds": delay_seconds}
        return dict(self._call("PUT", "/failures", json=body))

    def webhook(self, bot_id: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/bots/{bot_id}/webhook"))

    # -- load and measurement --

    def load(self, messages: list[dict[str, Any]]) -> list[int]:
        """Queues many user messages at once: [{bot_id, user: {id, first_name, language_code?}, chat_id?, text}].

        Returns their update ids in the same order (null where allowed_updates filtered one out).
        """
        return list(self._call("POST", "/load", json={"messages": messages}, timeout=120.0)["update_ids"])

    def timeline(self, since: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """One page of events after `since`: (next since, [{seq, kind, bot_id, chat_id, update_id, method, at}])."""
        body = self._call("GET", "/timeline", params={"since": since}, timeout=60.0)
        return int(body["next"]), list(body["events"])

    def metrics(self) -> dict[str, Any]:
        """{updates_created, deliveries_ok, deliveries_failed, webhook_in_flight, peak_in_flight_per_bot, api_calls}."""
        return dict(self._call("GET", "/metrics"))

    def close(self) -> None:
        self._http.close()
