"""copyMessage and replies in the emulator, as the feedback inbox uses them (issue 15): HttpTelegramApi copies a
user's message into another chat and gets the copy's number (copyMessage answers a MessageId, not a Message); a
user's reply reaches the bot with `reply_to_message`, all in the documented shapes."""

from __future__ import annotations

from tests.emulator.conftest import USER, Emu, WebhookReceiver, wait_until
from tests.emulator.test_spec_contract import param_problems, problems, result_problems
from tgm.domain.bots import BotToken
from tgm.domain.outbound import CopyMessage
from tgm.telegram_http.client import HttpTelegramApi

ADMIN = {"id": 700002, "first_name": "Admin", "language_code": "en"}


def test_a_users_message_is_copied_into_another_chat_by_the_bot(emu: Emu) -> None:
    bot = emu.create_bot("copy_bot")
    original = emu.user_says(bot["id"], "where is my order?")
    emu.user_says(bot["id"], "/start", user=ADMIN)
    markup = {"inline_keyboard": [[{"text": "Block", "callback_data": "b"}]]}
    with HttpTelegramApi(emu.base_url, timeout_seconds=5) as api:
        copy_of = CopyMessage(ADMIN["id"], USER["id"], original["message_id"], reply_markup=markup)
        copied = api.copy_message(BotToken(bot["token"]), copy_of)
    assert copied.chat_id == ADMIN["id"]
    copy = next(m for m in emu.messages(bot["id"], ADMIN["id"]) if m["message_id"] == copied.message_id)
    assert copy["from_bot"] and copy["text"] == "where is my order?" and copy["reply_markup"] == markup
    [call] = [c for c in emu.calls(bot["id"]) if c["method"] == "copyMessage"]
    assert param_problems("copyMessage", call["params"]) == []


def test_the_answer_is_a_message_id_and_bad_copies_are_refused(emu: Emu) -> None:
    bot = emu.create_bot("copy_spec_bot")
    original = emu.user_says(bot["id"], "hi")
    emu.user_says(bot["id"], "/start", user=ADMIN)
    result = emu.ok(bot["token"], "copyMessage", chat_id=ADMIN["id"], from_chat_id=USER["id"], message_id=1)
    assert set(result) == {"message_id"} and result_problems("copyMessage", result) == []
    missing = emu.api(bot["token"], "copyMessage", chat_id=ADMIN["id"], from_chat_id=USER["id"], message_id=999)
    assert missing.status_code == 400 and "message to copy not found" in missing.json()["description"]
    unknown_chat = emu.api(bot["token"], "copyMessage", chat_id=123, from_chat_id=USER["id"], message_id=1)
    assert unknown_chat.status_code == 400 and original["message_id"] == 1


def test_a_reply_carries_the_replied_message(emu: Emu, receiver: WebhookReceiver) -> None:
    bot = emu.create_bot("reply_bot")
    emu.ok(bot["token"], "setWebhook", url=receiver.url(), allowed_updates=["message"])
    emu.user_says(bot["id"], "/start")
    sent = emu.ok(bot["token"], "sendMessage", chat_id=USER["id"], text="delivered")
    emu.user_says(bot["id"], "thanks", reply_to_message_id=sent["message_id"])
    wait_until(lambda: len(receiver.completed()) == 2)
    update = receiver.completed()[1].body
    replied = update["message"]["reply_to_message"]
    assert replied["message_id"] == sent["message_id"] and replied["text"] == "delivered"
    assert "reply_to_message" not in replied
    assert problems(update, ["Update"], "Update") == []
    refused = emu.http.post(
        f"/_emulator/bots/{bot['id']}/messages", json={"user": USER, "text": "x", "reply_to_message_id": 999}
    )
    assert refused.status_code == 400
