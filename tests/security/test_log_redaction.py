"""Redaction holes found in review (issue 11, item 7): encoded tokens, bytes in `extra`, a bad format string that
raised inside business code, and uncaught exceptions and warnings that went to stderr around the redacting handler."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tgm.domain.redaction import REDACTED, redact
from tgm.observability.logging import configure_logging

REPO = Path(__file__).resolve().parents[2]
SECRET = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x"
TOKEN = f"5550001234:{SECRET}"


@pytest.mark.parametrize(
    "encoded",
    [TOKEN.replace(":", "%3A"), TOKEN.replace(":", "%3a"), TOKEN.replace(":", "%253A"), TOKEN.replace(":", "\\u003a")],
    ids=["url", "url-lower", "url-twice", "json-escape"],
)
def test_encoded_tokens_are_masked(encoded: str) -> None:
    assert redact(f"GET /bot{encoded}/getMe") == f"GET /bot{REDACTED}/getMe"


def test_ordinary_colons_stay() -> None:
    text = "at 10:30 chat 12345678:short and https://example.org:8443/x and https://example.org/a:b@c"
    assert redact(text) == text


def test_passwords_in_connection_urls_are_masked_and_the_user_kept() -> None:
    text = "Error connecting to rediss://gateway:s3cr%2Ft@redis:6380/0 (db postgresql+psycopg://tgm:pw@db/tgm)"
    assert redact(text) == (
        f"Error connecting to rediss://gateway:{REDACTED}@redis:6380/0 (db postgresql+psycopg://tgm:{REDACTED}@db/tgm)"
    )
    # Passwords holding "/" or "@" (SQLAlchemy and redis-py accept both unquoted) are masked whole.
    for password in ("s3cr/et", "pa@ss"):
        assert (
            redact(f"postgresql+psycopg://tgm_app:{password}@pg/tgm")
            == f"postgresql+psycopg://tgm_app:{REDACTED}@pg/tgm"
        )


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook)
    thread_hook = threading.excepthook
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "urllib3", "uvicorn.access")}
    configure_logging("test")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        root.handlers[:], _, sys.excepthook = saved[0], saved[1], saved[2]
        root.setLevel(saved[1])
        for name, level in chatty.items():
            logging.getLogger(name).setLevel(level)
        threading.excepthook = thread_hook
        logging.captureWarnings(False)


def test_bytes_in_extra_are_masked(captured: io.StringIO) -> None:
    logging.getLogger("t").warning("payload", extra={"body": f'{{"token":"{TOKEN}"}}'.encode()})
    line = json.loads(captured.getvalue().splitlines()[-1])
    assert SECRET not in captured.getvalue() and REDACTED in line["body"]


def test_a_bad_format_string_never_raises_and_keeps_the_template(captured: io.StringIO) -> None:
    logging.getLogger("t").info("two values %s %s", TOKEN)  # one argument for two placeholders
    out = captured.getvalue()
    assert "two values" in out and "did not fit" in out and SECRET not in out


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO / "src")},
    )


def test_uncaught_exceptions_in_threads_and_main_go_through_redaction() -> None:
    done = run_python(
        "import threading\n"
        "from tgm.observability.logging import configure_logging\n"
        "configure_logging('t')\n"
        f"t = threading.Thread(target=lambda: (_ for _ in ()).throw(RuntimeError('{TOKEN}')))\n"
        "t.start(); t.join()\n"
        f"raise ValueError('main {TOKEN}')\n"
    )
    assert done.returncode != 0
    assert SECRET not in done.stderr
    assert "uncaught exception in a thread" in done.stderr and "uncaught exception" in done.stderr
    assert done.stderr.count(REDACTED) >= 2


def test_warnings_go_through_redaction() -> None:
    done = run_python(
        "import warnings\n"
        "from tgm.observability.logging import configure_logging\n"
        "configure_logging('t')\n"
        f"warnings.warn('deprecated call with {TOKEN}')\n"
    )
    assert SECRET not in done.stderr and REDACTED in done.stderr
