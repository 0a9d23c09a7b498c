from tgm.domain.messages import language_for, render
from tgm.domain.redaction import REDACTED, contains_token, redact
from tgm.domain.updates import UpdateEnvelope

TOKEN = "1234567890:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-zZ"


def test_redact_masks_tokens_anywhere_in_text() -> None:
    text = f"failed POST https://api.telegram.org/bot{TOKEN}/sendMessage and {TOKEN}."
    cleaned = redact(text)
    assert TOKEN not in cleaned
    assert cleaned.count(REDACTED) == 2
    assert contains_token(text) and not contains_token(cleaned)


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "at 12:30 the bot 123:abc answered /start"
    assert redact(text) == text


def test_envelope_round_trips_and_reads_fields() -> None:
    update = {
        "update_id": 7,
        "message": {"message_id": 1, "chat": {"id": 42}, "from": {"id": 42, "language_code": "en"}, "text": "/start"},
    }
    envelope = UpdateEnvelope("bot-1", 7, 1.5, "rid", update)
    again = UpdateEnvelope.from_message(envelope.to_message())
    assert again == envelope
    assert (again.chat_id, again.text, again.view.language) == (42, "/start", "en")


def test_envelope_of_callback_has_chat_but_no_text() -> None:
    update = {
        "update_id": 8,
        "callback_query": {"id": "c", "from": {"id": 7}, "data": "x", "message": {"chat": {"id": -5}, "text": "held"}},
    }
    envelope = UpdateEnvelope("bot-1", 8, 0.0, "rid", update)
    assert envelope.chat_id == -5
    assert envelope.text is None  # the text of the message the button is under is not a command


def test_catalogue_falls_back_to_portuguese() -> None:
    assert language_for("en-US") == "en"
    assert language_for(None) == "pt-BR"
    assert language_for("de") == "pt-BR"
    assert render("rate_limited", "pt-br", seconds=12) == "⏳ Muitos comandos em pouco tempo. Aguarde 12 segundos."
