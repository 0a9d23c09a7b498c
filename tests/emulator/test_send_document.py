"""sendDocument with an uploaded file (multipart/form-data): HttpTelegramApi sends it, the emulator stores it in the
chat with its bytes and answers a Message holding a Document, in the documented shape."""

from __future__ import annotations

import base64

from tests.emulator.conftest import USER, Emu
from tests.emulator.test_spec_contract import param_problems, result_problems
from tgm.domain.bots import BotToken
from tgm.domain.outbound import SendDocument
from tgm.telegram_http.client import HttpTelegramApi

CSV = "telegram_user_id,status\r\n7,active\r\n8,ação\r\n".encode()


def test_an_uploaded_document_reaches_the_chat_byte_for_byte(emu: Emu) -> None:
    bot = emu.create_bot("doc_bot")
    emu.user_says(bot["id"], "/start")
    with HttpTelegramApi(emu.base_url, timeout_seconds=5) as api:
        document = SendDocument(USER["id"], "subscribers.csv", CSV, mime_type="text/csv", caption="📄 Assinantes")
        sent = api.send_document(BotToken(bot["token"]), document)
    assert sent.chat_id == USER["id"]
    message = next(m for m in emu.messages(bot["id"], USER["id"]) if m["message_id"] == sent.message_id)
    document = message["document"]
    assert base64.b64decode(document["content_base64"]) == CSV
    assert (document["file_name"], document["mime_type"]) == ("subscribers.csv", "text/csv")
    assert document["file_size"] == len(CSV)
    assert message["plain_text"] == "📄 Assinantes"
    [call] = [c for c in emu.calls(bot["id"]) if c["method"] == "sendDocument"]
    assert call["params"]["document"] == {"file_name": "subscribers.csv", "file_size": len(CSV)}  # no bytes logged


def test_the_answer_and_the_parameters_match_the_spec(emu: Emu) -> None:
    bot = emu.create_bot("doc_spec_bot")
    emu.user_says(bot["id"], "/start")
    files = {"document": ("list.csv", CSV, "text/csv")}
    body = emu.http.post(f"/bot{bot['token']}/sendDocument", data={"chat_id": str(USER["id"])}, files=files).json()
    assert body["ok"] is True, body
    assert result_problems("sendDocument", body["result"]) == []
    assert "text" not in body["result"] and body["result"]["document"]["file_size"] == len(CSV)
    assert param_problems("sendDocument", {"chat_id": USER["id"], "caption": "x", "document": "attach"}) == []


def test_a_document_is_required_and_must_not_be_empty(emu: Emu) -> None:
    bot = emu.create_bot("doc_err_bot")
    emu.user_says(bot["id"], "/start")
    missing = emu.api(bot["token"], "sendDocument", chat_id=USER["id"], document="a-file-id")
    assert missing.status_code == 400 and "no document" in missing.json()["description"]
    empty = emu.http.post(
        f"/bot{bot['token']}/sendDocument",
        data={"chat_id": str(USER["id"])},
        files={"document": ("e.csv", b"", "text/csv")},
    )
    assert empty.status_code == 400
