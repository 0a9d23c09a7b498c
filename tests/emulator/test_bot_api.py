"""The emulator's Bot API: shapes of answers and errors, params from JSON/form/query, control API views."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.emulator.conftest import USER, Emu, wait_until

REPO = Path(__file__).resolve().parents[2]


def test_issued_tokens_look_real_and_get_me_answers(emu: Emu) -> None:
    bot = emu.create_bot("shop_bot", first_name="Shop")
    assert re.fullmatch(r"\d{10}:[A-Za-z0-9_-]{35}", bot["token"])
    assert int(bot["token"].split(":")[0]) == bot["id"]
    me = emu.ok(bot["token"], "getMe")
    assert me["id"] == bot["id"] and me["is_bot"] is True
    assert me["username"] == "shop_bot" and me["first_name"] == "Shop"
    assert me["can_manage_bots"] is False


def test_error_shapes(emu: Emu) -> None:
    bot = emu.create_bot()
    forged = bot["token"][:-3] + ("abc" if not bot["token"].endswith("abc") else "xyz")
    response = emu.api(forged, "getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}

    response = emu.api(bot["token"], "noSuchMethod")
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}

    response = emu.api(bot["token"], "sendMessage", chat_id=123456, text="hi")
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}

    emu.user_says(bot["id"], "hello")
    response = emu.api(bot["token"], "sendMessage", chat_id=USER["id"], text="   ")
    assert response.json()["description"] == "Bad Request: message text is empty"
    response = emu.api(bot["token"], "deleteMessage", chat_id=USER["id"], message_id=999)
    assert response.status_code == 400
    assert response.json()["description"] == "Bad Request: message to delete not found"
    response = emu.api(bot["token"], "sendMessage", chat_id=USER["id"], text="<b>x", parse_mode="HTML")
    assert response.json()["description"].startswith("Bad Request: can't parse entities")


def test_revoked_token_stops_working(emu: Emu) -> None:
    bot = emu.create_bot()
    assert emu.api(bot["token"], "getMe").status_code == 200
    emu.http.post(f"/_emulator/bots/{bot['id']}/revoke").raise_for_status()
    response = emu.api(bot["token"], "getMe")
    assert response.status_code == 401
    assert response.json()["description"] == "Unauthorized"


def test_params_from_query_form_and_json_and_method_case(emu: Emu) -> None:
    bot = emu.create_bot()
    emu.user_says(bot["id"], "hi")
    token = bot["token"]
    by_query = emu.http.get(f"/bot{token}/sendmessage", params={"chat_id": USER["id"], "text": "q"}).json()
    by_form = emu.http.post(
        f"/bot{token}/SENDMESSAGE",
        data={
            "chat_id": str(USER["id"]),
            "text": "f",
            "reply_markup": json.dumps({"inline_keyboard": [[{"text": "a", "callback_data": "x"}]]}),
        },
    ).json()
    by_json = emu.api(token, "sendMessage", chat_id=USER["id"], text="j")
    assert by_query["ok"] and by_form["ok"] and by_json.json()["ok"]
    assert by_form["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "x"
    texts = [m["text"] for m in emu.messages(bot["id"], USER["id"]) if m["from_bot"]]
    assert texts == ["q", "f", "j"]
    assert [c["method"] for c in emu.calls(bot["id"])] == ["sendMessage"] * 3


def test_conversation_view_edit_delete_and_callbacks(emu: Emu) -> None:
    bot = emu.create_bot()
    token = bot["token"]
    said = emu.user_says(bot["id"], "123:secret-looking")
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    sent = emu.ok(token, "sendMessage", chat_id=USER["id"], text="<b>Saved</b>", parse_mode="HTML", reply_markup=markup)
    assert sent["text"] == "Saved" and sent["chat"] == {
        "id": USER["id"],
        "type": "private",
        "first_name": "Ana",
        "username": "ana",
    }
    assert emu.ok(token, "deleteMessage", chat_id=USER["id"], message_id=said["message_id"]) is True
    edited = emu.ok(token, "editMessageText", chat_id=USER["id"], message_id=sent["message_id"], text="Done")
    assert edited["text"] == "Done" and "edit_date" in edited

    view = emu.messages(bot["id"], USER["id"])
    assert [(m["message_id"], m["from_bot"], m["deleted"], m["edited"]) for m in view] == [
        (said["message_id"], False, True, False),
        (sent["message_id"], True, False, True),
    ]
    assert view[1]["text"] == "Done" and "reply_markup" not in view[1]

    response = emu.http.post(
        f"/_emulator/bots/{bot['id']}/callbacks",
        json={"user": USER, "chat_id": USER["id"], "message_id": sent["message_id"], "data": "yes"},
    ).json()
    assert emu.ok(token, "answerCallbackQuery", callback_query_id=response["callback_query_id"], text="ok") is True
    again = emu.api(token, "answerCallbackQuery", callback_query_id=response["callback_query_id"])
    assert again.status_code == 400
    answered = emu.http.get(f"/_emulator/bots/{bot['id']}/callbacks").json()
    assert answered[0]["answered"] is True and answered[0]["answer_text"] == "ok"


def test_calls_never_carry_the_token(emu: Emu) -> None:
    bot = emu.create_bot()
    emu.ok(bot["token"], "setWebhook", url="https://example.invalid/hook", secret_token="s3cret")
    calls = emu.calls(bot["id"])
    assert calls[0]["method"] == "setWebhook"
    assert bot["token"] not in json.dumps(calls)
    assert bot["token"].split(":")[1] not in json.dumps(emu.webhook(bot["id"]))


def test_flood_control_answers_429_with_retry_after(emu: Emu) -> None:
    bot = emu.create_bot()
    emu.user_says(bot["id"], "hi")
    assert emu.api(bot["token"], "sendMessage", chat_id=USER["id"], text="1").status_code == 200
    assert emu.api(bot["token"], "sendMessage", chat_id=USER["id"], text="2").status_code == 200  # off (fixture)
    emu.http.put("/_emulator/flood", json={"enabled": True, "per_bot_per_second": 30}).raise_for_status()
    assert emu.api(bot["token"], "sendMessage", chat_id=USER["id"], text="3").status_code == 200
    response = emu.api(bot["token"], "sendMessage", chat_id=USER["id"], text="4")
    assert response.status_code == 429
    body = response.json()
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {body['parameters']['retry_after']}",
        "parameters": {"retry_after": 1},
    }


def test_managed_bot_creation_token_and_replacement(emu: Emu) -> None:
    manager = emu.create_bot("manager_bot", can_manage_bots=True)
    assert emu.ok(manager["token"], "getMe")["can_manage_bots"] is True
    created = emu.http.post(
        f"/_emulator/bots/{manager['id']}/managed_bots", json={"user": USER, "username": "child_bot"}
    ).json()
    # Like Telegram: the managed_bot_created service message, then the managed_bot update.
    assert emu.webhook(manager["id"])["pending_update_count"] == 2
    token = emu.ok(manager["token"], "getManagedBotToken", user_id=created["id"])
    assert token == created["token"]
    assert emu.ok(token, "getMe")["username"] == "child_bot"
    new_token = emu.ok(manager["token"], "replaceManagedBotToken", user_id=created["id"])
    assert new_token != token
    assert emu.api(token, "getMe").status_code == 401
    assert emu.ok(new_token, "getMe")["id"] == created["id"]
    other = emu.create_bot("plain_bot")
    refused = emu.api(other["token"], "getManagedBotToken", user_id=created["id"])
    assert refused.status_code == 400


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_process_serves_and_never_logs_tokens(tmp_path: Path) -> None:
    port = _free_port()
    log_path = tmp_path / "emulator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tgm.tools.telegram_emulator", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/_emulator/health", timeout=1).json() == {"ok": True}
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=15)
        emu = Emu(base)
        bot = emu.create_bot("logged_bot")
        emu.ok(bot["token"], "getMe")
        emu.api(bot["token"], "nope")
        emu.api(bot["token"] + "x", "getMe")
        emu.http.get(f"/bot{bot['token']}/getMe", params={"a": "b"})
        wait_until(lambda: "/nope" in log_path.read_text(), timeout=5)
    finally:
        process.terminate()
        process.wait(10)
    text = log_path.read_text()
    assert "getMe" in text, text
    secret = bot["token"].split(":")[1]
    assert secret not in text and secret[:20] not in text


def test_injected_failures_answer_500_without_performing_the_call(emu: Emu) -> None:
    bot = emu.create_bot()
    emu.user_says(bot["id"], "hello")
    set_failures = emu.http.put("/_emulator/failures", json={"method": "sendMessage", "count": 2})
    assert set_failures.json() == {"sendmessage": 2}
    for _ in range(2):
        response = emu.api(bot["token"], "sendMessage", chat_id=USER["id"], text="hi")
        assert response.status_code == 500
        assert response.json() == {"ok": False, "error_code": 500, "description": "Internal Server Error"}
    assert all(m["text"] != "hi" for m in emu.messages(bot["id"], USER["id"])), "a failed call is not performed"
    assert emu.ok(bot["token"], "sendMessage", chat_id=USER["id"], text="hi")["text"] == "hi"
    calls = [c for c in emu.http.get(f"/_emulator/bots/{bot['id']}/calls").json() if c["method"] == "sendMessage"]
    assert [c.get("failed") for c in calls] == [500, 500, None]
    assert emu.http.put("/_emulator/failures", json={"method": "getMe", "count": -1}).status_code == 422


def test_flood_control_is_on_by_default_as_on_telegram() -> None:
    from fastapi.testclient import TestClient

    from tgm.tools.telegram_emulator.app import create_app

    with TestClient(create_app()) as client:
        assert client.get("/_emulator/flood").json()["enabled"] is True
        bot = client.post("/_emulator/bots", json={"username": "floody_bot"}).json()
        client.post(f"/_emulator/bots/{bot['id']}/messages", json={"user": USER, "text": "hi"}).raise_for_status()
        send = f"/bot{bot['token']}/sendMessage"
        assert client.post(send, json={"chat_id": USER["id"], "text": "1"}).status_code == 200
        second = client.post(send, json={"chat_id": USER["id"], "text": "2"})  # the same chat within a second
        assert second.status_code == 429 and second.json()["parameters"]["retry_after"] >= 1
        client.post("/_emulator/reset").raise_for_status()
        assert client.get("/_emulator/flood").json()["enabled"] is True, "a reset keeps the default"
