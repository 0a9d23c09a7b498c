"""Error tracking (Sentry) when SENTRY_DSN is set; every event and breadcrumb is redacted as the logs are.

Sentry's log handlers see a record before the logs' redacting handler does (on purpose, so that events keep their
stack traces), and its events carry exception messages, request data, breadcrumbs (outbound HTTP URLs: Bot API URLs
hold the token), extra and contexts. So `scrub_event` and `scrub_breadcrumb` run `tgm.domain.redaction.redact`
over every string in them. What redaction cannot recognise stays out altogether: frame local variables (key bytes,
decrypted texts), request headers, cookies and bodies (the webhook secret header, users' messages), query strings,
default PII.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import logging
from typing import TYPE_CHECKING, Any

from tgm.config.deployment import DeploymentSettings
from tgm.domain.redaction import redact

if TYPE_CHECKING:
    from sentry_sdk.transport import Transport

# sentry_sdk is imported only when error tracking is on: it costs every process ~0.3 s of start-up otherwise.

logger = logging.getLogger(__name__)

_REQUEST_FIELDS_KEPT = ("method", "url")
_BREADCRUMB_DATA_DROPPED = ("http.query", "http.fragment")


def _redacted(value: Any) -> Any:
    """`value` with every string in it redacted; objects that are not JSON-like become their redacted repr."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {(redact(key) if isinstance(key, str) else key): _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return redact(bytes(value).decode("utf-8", errors="replace"))
    if value is None or isinstance(value, bool | int | float | datetime.datetime):
        return value
    return redact(repr(value))


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """before_send: the request keeps only its method and URL; then every string is redacted."""
    request = event.get("request")
    if isinstance(request, dict):
        event["request"] = {name: request[name] for name in _REQUEST_FIELDS_KEPT if name in request}
    scrubbed: dict[str, Any] = _redacted(event)
    return scrubbed


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """before_breadcrumb: no query string or fragment of an outbound call (admins' API keys); strings redacted."""
    data = crumb.get("data")
    if isinstance(data, dict):
        crumb["data"] = {name: value for name, value in data.items() if name not in _BREADCRUMB_DATA_DROPPED}
    scrubbed: dict[str, Any] = _redacted(crumb)
    return scrubbed


def _package_release() -> str | None:
    try:
        return f"tgm@{importlib.metadata.version('tgm')}"
    except importlib.metadata.PackageNotFoundError:
        return None


def client_options(deployment: DeploymentSettings) -> dict[str, Any]:
    """sentry_sdk.init's arguments: what is sent, and how it is scrubbed."""
    from sentry_sdk.integrations.logging import LoggingIntegration

    return {
        "dsn": deployment.sentry_dsn.get_secret_value(),
        "environment": deployment.app_env,
        "release": deployment.sentry_release or _package_release(),
        "before_send": scrub_event,
        "before_breadcrumb": scrub_breadcrumb,
        # send_default_pii is left unset: off (setting it at all is deprecated in favour of data_collection, and
        # data_collection would turn off the SDK's own key-based scrubber).
        "include_local_variables": False,
        "max_request_body_size": "never",
        # Only the default integrations (excepthook, threading, stdlib HTTP): no web framework's request capture, no
        # Redis or SQL breadcrumbs with their arguments. Logging through handlers (_install_log_handlers) instead.
        "auto_enabling_integrations": False,
        "integrations": [LoggingIntegration(level=None, event_level=None, sentry_logs_level=None)],
        "enable_logs": False,
        "enable_metrics": False,
        "traces_sample_rate": None,
    }


def configure_error_tracking(
    service: str,
    *,
    key_holder: bool = False,
    deployment: DeploymentSettings | None = None,
    transport: type[Transport] | Transport | None = None,
) -> bool:
    """Starts this process's Sentry client when SENTRY_DSN is set; returns whether one runs. Idempotent (the
    gateway's uvicorn worker factory calls it again in the same process).

    `key_holder` (the vault): off unless SENTRY_VAULT_ENABLED is on too. `transport`: tests capture envelopes."""
    deployment = deployment or DeploymentSettings()
    if not deployment.sentry_dsn.get_secret_value():
        return False
    if key_holder and not deployment.sentry_vault_enabled:
        logger.info("error tracking stays off in the key holder (SENTRY_VAULT_ENABLED is not on)")
        return False
    import sentry_sdk

    if not sentry_sdk.get_client().is_active():
        sentry_sdk.init(**client_options(deployment), transport=transport)
        sentry_sdk.get_global_scope().set_tag("service", service)  # global: every thread's events carry it
        logger.info("error tracking on", extra={"environment": deployment.app_env})
    _install_log_handlers()  # again too: configure_logging, called again, keeps only its own handler
    return True


def _install_log_handlers() -> None:
    """Sentry's log handlers (ERROR records become events, INFO ones breadcrumbs) go first on the root logger.

    Sentry's default hook sees a record after the handlers, when the redacting one has already turned its
    exception into text and dropped it: the events would have no stack trace. First, they see the record whole;
    scrub_event and scrub_breadcrumb redact what they make of it."""
    from sentry_sdk.integrations.logging import BreadcrumbHandler, EventHandler

    root = logging.getLogger()
    others = [handler for handler in root.handlers if not isinstance(handler, EventHandler | BreadcrumbHandler)]
    root.handlers[:] = [EventHandler(level=logging.ERROR), BreadcrumbHandler(level=logging.INFO), *others]
