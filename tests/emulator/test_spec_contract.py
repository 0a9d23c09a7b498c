"""HttpTelegramApi and the emulator against the published Bot API (api.json).

- every parameter HttpTelegramApi sends exists for its method, with a compatible type, and required ones are sent;
- every result and update the emulator produces has the documented required fields, no undocumented ones,
  and compatible types.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import USER, Emu, WebhookReceiver, wait_until
from tgm.domain.bots import BotToken
from tgm.domain.outbound import EditMessageText, SendMessage
from tgm.domain.ports import WebhookRegistration
from tgm.telegram_http.client import HttpTelegramApi

SPEC_PATH = Path(
    os.environ.get("TGM_BOT_API_SPEC")
    or Path(__file__).resolve().parents[2] / "third_party" / "telegram-bot-api-spec" / "api.json"
)


@cache
def spec() -> dict[str, Any]:
    if not SPEC_PATH.is_file():
        pytest.fail(f"Bot API spec not found at {SPEC_PATH} (set TGM_BOT_API_SPEC)")
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def problems(value: Any, type_names: list[str], where: str) -> list[str]:
    """Empty when `value` fits one of the api.json type expressions."""
    found: list[list[str]] = []
    for name in type_names:
        issues = _check(value, name, where)
        if not issues:
            return []
        found.append(issues)
    return min(found, key=len) if found else [f"{where}: no type"]


def _check(value: Any, name: str, where: str) -> list[str]:
    if name.startswith("Array of "):
        if not isinstance(value, list):
            return [f"{where}: expected {name}, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in problems(item, [name[9:]], f"{where}[{i}]")]
    scalar = {
        "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "String": lambda v: isinstance(v, str),
        "Boolean": lambda v: isinstance(v, bool),
        "True": lambda v: v is True,
        "InputFile": lambda v: True,
    }
    if name in scalar:
        return [] if scalar[name](value) else [f"{where}: expected {name}, got {value!r}"]
    kind = spec()["types"].get(name)
    if kind is None:
        return [f"{where}: unknown type {name}"]
    if "subtypes" in kind:
        return problems(value, kind["subtypes"], where)
    if not isinstance(value, dict):
        return [f"{where}: expected {name} object, got {type(value).__name__}"]
    fields = {f["name"]: f for f in kind.get("fields", [])}
    issues = [f"{where}.{key}: not a field of {name}" for key in value if key not in fields]
    issues += [
        f"{where}.{f}: required by {name}, missing" for f, d in fields.items() if d["required"] and f not in value
    ]
    for key, item in value.items():
        if key in fields:
            issues += problems(item, fields[key]["types"], f"{where}.{key}")
    return issues


def param_problems(method: str, params: dict[str, Any]) -> list[str]:
    definition = spec()["methods"].get(method)
    if definition is None:
        return [f"{method}: not a Bot API method"]
    fields = {f["name"]: f for f in definition.get("fields", [])}
    issues = [f"{method}({key}): no such parameter" for key in params if key not in fields]
    issues += [f"{method}({f}): required, not sent" for f, d in fields.items() if d["required"] and f not in params]
    for key, value in params.items():
        if key in fields:
            issues += problems(value, fields[key]["types"], f"{method}({key})")
    return issues


def result_problems(method: str, result: Any) -> list[str]:
    return problems(result, spec()["methods"][method]["returns"], f"{method} result")


# -- the checker itself must be able to say no ------------------------------------------------------------


def test_checker_rejects_what_the_api_does_not_have() -> None:
    assert param_problems("sendMessage", {"chat_id": 1, "text": "x", "disable_web_page_preview": True})
    assert param_problems("sendMessage", {"chat_id": 1})
    assert param_problems("deleteMessage", {"chat_id": 1, "message_id": "7"})
    assert param_problems(
        "sendMessage", {"chat_id": 1, "text": "x", "reply_markup": {"inline_keyboard": [{"text": "a"}]}}
    )
    assert result_problems("getMe", {"id": 1, "first_name": "x"})  # is_bot missing
    assert result_problems("sendMessage", {"message_id": 1, "date": 0, "chat": {"id": 1}})  # chat.type missing
    assert not param_problems("sendMessage", {"chat_id": "@chan", "text": "x"})


# -- HttpTelegramApi sends only what the API has ---------------------------------------------------------


def test_http_client_sends_only_documented_parameters(emu: Emu, receiver: WebhookReceiver) -> None:
    manager = emu.create_bot("contract_bot", can_manage_bots=True)
    token = BotToken(manager["token"])
    emu.user_says(manager["id"], "hi")
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}, {"text": "Site", "url": "https://e.x"}]]}
    with HttpTelegramApi(emu.base_url, timeout_seconds=5) as api:
        assert api.get_me(token).can_manage_bots is True
        api.set_webhook(token, WebhookRegistration(receiver.url(), "sec_ret", ["message", "callback_query"]))
        hello = SendMessage(
            USER["id"], "<b>hi</b>", parse_mode="HTML", reply_markup=markup, disable_web_page_preview=True
        )
        sent = api.send_message(token, hello)
        assert sent.chat_id == USER["id"]
        api.edit_message_text(token, EditMessageText(USER["id"], sent.message_id, "edited", reply_markup=markup))
        query = emu.http.post(
            f"/_emulator/bots/{manager['id']}/callbacks",
            json={"user": USER, "chat_id": USER["id"], "message_id": sent.message_id, "data": "y"},
        ).json()
        api.answer_callback_query(token, query["callback_query_id"], text="done")
        api.delete_message(token, USER["id"], sent.message_id)
        api.get_webhook_info(token)
        child = emu.http.post(
            f"/_emulator/bots/{manager['id']}/managed_bots", json={"user": USER, "username": "contract_child_bot"}
        ).json()
        child_token = api.get_managed_bot_token(token, child["id"])
        assert api.get_me(child_token).telegram_bot_id == child["id"]
        api.replace_managed_bot_token(token, child["id"])
        api.delete_webhook(token, drop_pending_updates=True)

    calls = emu.calls(manager["id"])
    assert {c["method"] for c in calls} >= {
        "getMe", "setWebhook", "sendMessage", "editMessageText", "answerCallbackQuery", "deleteMessage",
        "getWebhookInfo", "getManagedBotToken", "replaceManagedBotToken", "deleteWebhook",
    }  # fmt: skip
    issues = [issue for call in calls for issue in param_problems(call["method"], call["params"])]
    assert issues == []


# -- the emulator answers in the documented shapes -------------------------------------------------------


def test_emulator_results_and_updates_match_the_spec(emu: Emu, receiver: WebhookReceiver) -> None:
    manager = emu.create_bot("shape_bot", can_manage_bots=True)
    token = manager["token"]
    results: dict[str, Any] = {}
    results["setWebhook"] = emu.ok(
        token, "setWebhook", url=receiver.url(), allowed_updates=["message", "callback_query", "managed_bot"]
    )
    emu.user_says(manager["id"], "/start")
    emu.user_says(manager["id"], "hello group", chat_id=-100123, chat_type="supergroup")
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}
    results["getMe"] = emu.ok(token, "getMe")
    results["sendMessage"] = emu.ok(token, "sendMessage", chat_id=USER["id"], text="x", reply_markup=markup)
    message_id = results["sendMessage"]["message_id"]
    results["editMessageText"] = emu.ok(
        token, "editMessageText", chat_id=USER["id"], message_id=message_id, text="y", reply_markup=markup
    )
    emu.http.post(
        f"/_emulator/bots/{manager['id']}/callbacks",
        json={"user": USER, "chat_id": USER["id"], "message_id": message_id, "data": "y"},
    ).raise_for_status()
    child = emu.http.post(
        f"/_emulator/bots/{manager['id']}/managed_bots", json={"user": USER, "username": "shape_child_bot"}
    ).json()
    results["getManagedBotToken"] = emu.ok(token, "getManagedBotToken", user_id=child["id"])
    results["deleteMessage"] = emu.ok(token, "deleteMessage", chat_id=USER["id"], message_id=message_id)
    # message, callback_query, the managed_bot_created service message, then the managed_bot update
    wait_until(lambda: len(receiver.completed()) == 5)
    results["getWebhookInfo"] = emu.ok(token, "getWebhookInfo")
    results["answerCallbackQuery"] = emu.ok(
        token,
        "answerCallbackQuery",
        callback_query_id=emu.http.get(f"/_emulator/bots/{manager['id']}/callbacks").json()[0]["id"],
    )
    issues = [issue for method, result in results.items() for issue in result_problems(method, result)]
    updates = [r.body for r in receiver.completed()]
    assert {next(k for k in u if k != "update_id") for u in updates} == {"message", "callback_query", "managed_bot"}
    assert any("managed_bot_created" in (u.get("message") or {}) for u in updates)
    issues += [issue for u in updates for issue in problems(u, ["Update"], f"Update {u['update_id']}")]
    assert issues == []
