"""JSON logs, one line per event, with request_id and token redaction on every record."""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from libs.domain.redaction import redact

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_CHATTY_LOGGERS = ("httpx", "httpcore", "urllib3", "uvicorn.access")


class RedactTokens(logging.Filter):
    """Masks token-shaped text in the message, its args, extra fields and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            # Render the traceback now, redacted, and drop the live exception object.
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
            record.exc_info = None
        for key, value in list(record.__dict__.items()):
            if isinstance(value, str) and key not in ("msg", "name", "levelname", "pathname", "filename", "module"):
                record.__dict__[key] = redact(value)
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


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


def log_extra(**fields: Any) -> dict[str, Any]:
    return {"extra": fields}
