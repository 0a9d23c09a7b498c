"""`make run`'s choice between the emulator and a real Telegram API (src/tgm/tools/devstack/__main__.py)."""

from __future__ import annotations

import pytest

from tgm.tools.devstack.__main__ import REAL_TELEGRAM_API, main, telegram_settings

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # shaped like a token, not a real one


def test_nothing_set_means_the_emulator() -> None:
    assert telegram_settings({}) == ("", "", "")


def test_a_manager_token_alone_means_the_real_api() -> None:
    environ = {"MANAGER_BOT_TOKEN": TOKEN, "WEBHOOK_BASE_URL": "https://bots.example.org/"}
    assert telegram_settings(environ) == (REAL_TELEGRAM_API, "https://bots.example.org", TOKEN)


def test_another_api_can_be_named() -> None:
    environ = {"TELEGRAM_API_BASE_URL": "http://127.0.0.1:8081/", "WEBHOOK_BASE_URL": "http://127.0.0.1:8000"}
    assert telegram_settings(environ) == ("http://127.0.0.1:8081", "http://127.0.0.1:8000", "")


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"MANAGER_BOT_TOKEN": TOKEN}, "WEBHOOK_BASE_URL is required"),
        ({"MANAGER_BOT_TOKEN": TOKEN, "WEBHOOK_BASE_URL": "http://bots.example.org"}, "https://"),
    ],
)
def test_the_real_api_needs_a_public_https_webhook_address(environ: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        telegram_settings(environ)


def test_make_run_refuses_before_starting_anything_and_never_echoes_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MANAGER_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("WEBHOOK_BASE_URL", "http://bots.example.org")
    monkeypatch.delenv("TELEGRAM_API_BASE_URL", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["--run-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "https://" in err and TOKEN not in err
    assert not (tmp_path / "run").exists()  # nothing was created or started
