"""Manager bot: service messages, failed token deletion, catalogue-only replies, /mybots pages, admin-id config."""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import pytest

from tests.unit.manager.test_manager_bot import ADMIN, MANAGER, SEALED, FakeAdmin, harness, make_bot
from tgm.domain.administration.setting_rules import SETTING_REASON_CODES, InvalidSetting
from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.errors import TelegramRequestFailed
from tgm.domain.manager_bot.keyboards import BOTS_PER_PAGE
from tgm.domain.messages import CATALOGUE, render
from tgm.domain.updates import UpdateEnvelope
from tgm.services.dispatcher.manager_bot.wiring import manager_config, parse_admin_ids


def test_the_managed_bot_created_service_message_gets_no_reply() -> None:
    h = harness()
    update = {
        "update_id": 1,
        "message": {
            "message_id": 5,
            "from": {"id": ADMIN, "is_bot": False, "first_name": "A"},
            "chat": {"id": ADMIN, "type": "private"},
            "managed_bot_created": {"bot": {"id": 444, "is_bot": True, "first_name": "Made", "username": "made_bot"}},
        },
    }
    outcome = h.bot(UpdateEnvelope(MANAGER, 1, 0.0, "r", update))
    assert outcome.action == "manager:managed_bot_created"
    assert h.outbox.sent == [] and h.admin.calls == []


def test_a_managed_bot_update_registers_for_the_owner_telegram_names() -> None:
    h = harness()
    update = {
        "update_id": 2,
        "managed_bot": {
            "user": {"id": 777, "is_bot": False, "first_name": "New owner"},
            "bot": {"id": 444, "is_bot": True, "first_name": "Made", "username": "made_bot"},
        },
    }
    h.bot(UpdateEnvelope(MANAGER, 2, 0.0, "r", update))
    assert h.admin.calls == [("register_managed", 777, 444)]
    assert h.outbox.sent[0]["chat_id"] == 777


@pytest.mark.parametrize("lang", ["pt-br", "en"])
def test_a_token_message_that_cannot_be_deleted_is_reported_to_the_admin(lang: str) -> None:
    h = harness()

    def refuse(bot_id: str, chat_id: int, message_id: int, **_kwargs: object) -> None:
        raise TelegramRequestFailed(400, "Bad Request: message can't be deleted")

    h.outbox.delete_message = refuse  # type: ignore[method-assign]
    h.message("/addbot [sealed:0]", sealed=(SEALED,), lang=lang)
    texts = [str(item["text"]) for item in h.outbox.sent]
    assert render("mgr_delete_token_yourself", lang) in texts
    assert h.admin.calls and h.admin.calls[0][0] == "register_sealed"  # still registered


@pytest.mark.parametrize("lang", ["pt-br", "en"])
def test_setting_refusals_are_shown_from_the_catalogue_by_reason_code(lang: str) -> None:
    h = harness()

    def refuse(*_args: object) -> None:
        raise InvalidSetting("the method is GET or POST", "method")

    h.admin.update_settings = refuse  # type: ignore[method-assign,assignment]
    h.message("/setcommand @shop_bot /x y", lang=lang)
    expected = render("mgr_invalid_setting", lang, reason=render("setting_method", lang))
    assert h.last == expected
    assert "the method is GET or POST" not in h.last or lang == "en"


def test_an_unknown_reason_code_falls_back_to_the_generic_text() -> None:
    h = harness()

    def refuse(*_args: object) -> None:
        raise InvalidSetting("something new", "brand_new_code")

    h.admin.update_settings = refuse  # type: ignore[method-assign,assignment]
    h.message("/setwelcome @shop_bot hi")
    assert h.last == render("mgr_invalid_setting", "pt-br", reason=render("setting_invalid", "pt-br"))


@pytest.mark.parametrize("lang", ["pt-br", "en"])
def test_usage_strings_come_from_the_catalogue(lang: str) -> None:
    h = harness()
    for command, key in (("/setwelcome", "usage_setwelcome"), ("/setapi", "usage_setapi")):
        h.message(command, lang=lang)
        assert h.last == render("mgr_usage", lang, usage=render(key, lang).replace("&", "&amp;"))


def test_every_catalogue_entry_speaks_both_languages_and_every_reason_code_has_a_text() -> None:
    for key, texts in CATALOGUE.items():
        assert set(texts) == {"pt-BR", "en"}, key
    for code in SETTING_REASON_CODES:
        assert f"setting_{code}" in CATALOGUE


def _many_bots(admin: FakeAdmin, count: int) -> None:
    bots = [replace(make_bot(username=f"bot_{i:02d}"), id=f"00000000-0000-4000-8000-{i:012d}") for i in range(count)]
    admin.list_bots = lambda owner_id: bots if owner_id == ADMIN else []  # type: ignore[method-assign]


def test_mybots_is_paginated_with_signed_page_buttons() -> None:
    h = harness()
    _many_bots(h.admin, BOTS_PER_PAGE * 2 + 1)
    h.message("/mybots")
    first = h.outbox.sent[-1]
    assert "@bot_00" in first["text"] and f"@bot_{BOTS_PER_PAGE:02d}" not in first["text"]
    nav = first["reply_markup"]["inline_keyboard"][-1]
    assert [button["text"] for button in nav] == [render("btn_next_page", "pt-br")]
    claim = h.tokens.verify(nav[0]["callback_data"], ADMIN, ADMIN)
    assert claim is not None and claim.action is CallbackAction.LIST_PAGE and claim.page == 1
    h.press(nav[0]["callback_data"])
    second = h.outbox.sent[-1]
    assert f"@bot_{BOTS_PER_PAGE:02d}" in second["text"] and "@bot_00" not in second["text"]
    assert len(second["reply_markup"]["inline_keyboard"][-1]) == 2  # previous and next
    # Another user's press of the page button, or an altered page, is refused.
    before = len(h.outbox.sent)
    assert h.press(nav[0]["callback_data"], user=ADMIN + 1).action == "manager:callback_invalid"
    assert len(h.outbox.sent) == before


def test_a_single_page_has_no_page_buttons() -> None:
    h = harness()
    _many_bots(h.admin, 2)
    h.message("/mybots")
    rows = h.outbox.sent[-1]["reply_markup"]["inline_keyboard"]
    assert all(
        h.tokens.verify(button["callback_data"], ADMIN, ADMIN).action is not CallbackAction.LIST_PAGE  # type: ignore[union-attr]
        for row in rows
        for button in row
    )
    assert h.outbox.sent[-1]["disable_web_page_preview"] is True


@pytest.mark.parametrize("raw", [",", " , ,", ";", "1,abc", "-5"])
def test_admin_ids_that_are_not_a_list_of_ids_are_refused_at_startup(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_admin_ids(raw)


def test_admin_mode_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert manager_config("", 1800, 600).allowed_admin_ids == frozenset()
        assert manager_config("1, 2 3", 1800, 600).allowed_admin_ids == {1, 2, 3}
    modes = [getattr(record, "mode", None) for record in caplog.records]
    assert "open" in modes and "allow_list" in modes
    assert not re.search(r"\b[123]\b.*\b[123]\b", " ".join(r.getMessage() for r in caplog.records))
