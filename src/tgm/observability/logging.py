"""JSON logs, one line per event, with request_id and token redaction on every record."""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from tgm.domain.redaction import redact

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_CHATTY_LOGGERS = ("httpx", "httpcore", "urllib3", "uvicorn.access")


class RedactTokens(logging.Filter):
    """Masks token-shaped text in the message, its args, extra fields (text and bytes) and exception text.

    Never raises: a log call with a bad format string or an unprintable argument must not break the business code
    that logs. What cannot be rendered is replaced, not passed through unredacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._redact(record)
        except Exception:
            record.msg = f"log record dropped: it could not be redacted ({record.name}:{record.lineno})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True

    @staticmethod
    def _redact(record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # e.g. logger.info("%s %s", one_arg): keep the template, drop the arguments
            message = f"{record.msg} [log arguments did not fit the format]"
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            # Render the traceback now, redacted, and drop the live exception object.
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
            record.exc_info = None
        for key, value in list(record.__dict__.items()):
            if key in ("msg", "name", "levelname", "pathname", "filename", "module"):
                continue
            if isinstance(value, str):
                record.__dict__[key] = redact(value)
            elif isinstance(value, bytes | bytearray):
                record.__dict__[key] = redact(bytes(value).decode("utf-8", errors="replace"))


def _log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """sys.excepthook: an uncaught exception goes through the redacting handler, not raw to stderr."""
    logging.getLogger(f"{__name__}.uncaught").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    exc = args.exc_value if args.exc_value is not None else args.exc_type()
    logging.getLogger(f"{__name__}.uncaught").critical(
        "uncaught exception in a thread",
        exc_info=(args.exc_type, exc, args.exc_traceback),
        extra={"thread_name": args.thread.name if args.thread else None},
    )


class _RedactingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(service: str, level: str = "INFO") -> None:
    """Installs the JSON handler on the root logger; idempotent."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactTokens())
    handler.setFormatter(
        _RedactingJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _CHATTY_LOGGERS:
        # httpx logs full request URLs at INFO, and Bot API URLs carry the token.
        logging.getLogger(name).setLevel(logging.WARNING)
    # Everything else a process prints about itself goes through the same redaction: uncaught exceptions (main
    # thread and others) and warnings.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    logging.captureWarnings(True)


def log_extra(**fields: Any) -> dict[str, Any]:
    return {"extra": fields}
