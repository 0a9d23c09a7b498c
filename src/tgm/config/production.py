"""APP_ENV=prod: every setting fit only for development, named, so that a deployment refuses to start on any of them.

Each service's `serve` calls `production_refusal` first and exits 2 with the whole list: an operator fixes them all at
once instead of one per restart. `APP_ENV=dev` (the default: `make run`, the tests) checks nothing here; the
services' own fail-closed checks (mutual TLS, Redis users, keys) still apply unless TGM_INSECURE_DEV=1.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from tgm.config.deployment import APP_ENVS, PRODUCTION, DeploymentSettings
from tgm.domain.callback_tokens import MIN_KEY_BYTES as MIN_CALLBACK_KEY_BYTES
from tgm.domain.redaction import redact
from tgm.grpc_runtime.tls import INSECURE_DEV_FLAG, TLS_ENV, TlsConfigError, insecure_dev_allowed, tls_from_env
from tgm.messaging.envelope_signing import missing_key_problem
from tgm.messaging.redis_acl import redis_url_problem

# A random key of 32+ bytes, even hex-encoded, has far more different characters; "x" * 40 or "changeme" * 4 do not.
MIN_DISTINCT_KEY_CHARACTERS = 8
_ABSENT = object()


def _secret(value: object) -> str:
    reveal = getattr(value, "get_secret_value", None)
    return str(reveal() if callable(reveal) else value or "")


def _in_production(problem: str | None) -> str | None:
    """A fail-closed check's message without its development hint (the flag is itself refused here)."""
    return problem.split(f"; {INSECURE_DEV_FLAG}=1 allows")[0] if problem else None


def _placeholder_problem(variable: str, key: str) -> str | None:
    if key and len(set(key)) < MIN_DISTINCT_KEY_CHARACTERS:
        return (
            f"{variable} looks like a placeholder (fewer than {MIN_DISTINCT_KEY_CHARACTERS} different characters): "
            "use random bytes, e.g. `openssl rand -base64 48`"
        )
    return None


def _https_problem(variable: str, url: str, why: str) -> str | None:
    if urlsplit(url).scheme == "https":
        return None
    return f"{variable} is not https ({redact(url) or 'empty'}): {why}"


def _process_problems(environ: Mapping[str, str]) -> list[str]:
    problems = []
    if insecure_dev_allowed(environ):
        problems.append(
            f"{INSECURE_DEV_FLAG}=1 is set: it allows plaintext gRPC, Redis without a user and no envelope key "
            "(development only)"
        )
    try:
        if tls_from_env(environ) is None:
            problems.append(f"mutual TLS is off: set {', '.join(TLS_ENV)}")
    except TlsConfigError as exc:
        problems.append(str(exc))
    return problems


def _messaging_problems(settings: object) -> list[str]:
    """Gateway and dispatcher: Redis as their own user, the updates' signing key, the buttons' signing key."""
    problems: list[str | None] = []
    redis_url = getattr(settings, "redis_url", _ABSENT)
    if redis_url is not _ABSENT:
        problem = redis_url_problem(str(redis_url), insecure_dev=False) if redis_url else "REDIS_URL is not set"
        problems.append(_in_production(problem))
        if urlsplit(str(redis_url)).username == "default":
            problems.append(
                "REDIS_URL uses Redis's `default` (operator) user: give this service its own "
                "(src/tgm/messaging/redis_acl.py)"
            )
    envelope_key = getattr(settings, "envelope_signing_key", _ABSENT)
    if envelope_key is not _ABSENT:
        problems.append(_in_production(missing_key_problem(envelope_key, insecure_dev=False)))
        problems.append(_placeholder_problem("ENVELOPE_SIGNING_KEY", _secret(envelope_key)))
    callback_key = getattr(settings, "callback_signing_key", _ABSENT)
    if callback_key is not _ABSENT:
        text = _secret(callback_key)
        if len(text.encode()) < MIN_CALLBACK_KEY_BYTES:
            problems.append(f"CALLBACK_SIGNING_KEY must be at least {MIN_CALLBACK_KEY_BYTES} bytes")
        problems.append(_placeholder_problem("CALLBACK_SIGNING_KEY", text))
        if text and text == _secret(envelope_key if envelope_key is not _ABSENT else ""):
            problems.append("CALLBACK_SIGNING_KEY and ENVELOPE_SIGNING_KEY are the same key: give each its own")
    return [problem for problem in problems if problem]


def _endpoint_problems(settings: object) -> list[str]:
    problems: list[str | None] = []
    if getattr(settings, "external_api_allow_private", False):
        problems.append(
            "EXTERNAL_API_ALLOW_PRIVATE is on: admins' API commands may call loopback and private addresses "
            "(tests only)"
        )
    telegram = getattr(settings, "telegram_api_base_url", _ABSENT)
    if telegram is not _ABSENT:
        why = "bot tokens travel in its URLs (a local emulator or Bot API server is for development)"
        problems.append(_https_problem("TELEGRAM_API_BASE_URL", str(telegram), why))
    webhook = getattr(settings, "webhook_base_url", _ABSENT)
    if webhook is not _ABSENT:
        problems.append(_https_problem("WEBHOOK_BASE_URL", str(webhook), "Telegram calls webhooks over HTTPS only"))
    return [problem for problem in problems if problem]


def _vault_problems(settings: object) -> list[str]:
    keyring = getattr(settings, "vault_keyring_file", _ABSENT)
    if keyring is _ABSENT:
        return []
    problems = []
    if keyring is None:
        problems.append(
            "VAULT_KEYRING_FILE is not set: the vault serves only from its keyring file "
            "(`python -m tgm.services.vault init` creates it once)"
        )
    elif _secret(getattr(settings, "encryption_key", None)):
        problems.append(
            "ENCRYPTION_KEY is given to the serving vault: the keyring file is authoritative, only "
            "`python -m tgm.services.vault init` needs it"
        )
    if not getattr(settings, "vault_audit_fsync", True):
        problems.append("VAULT_AUDIT_FSYNC is off: a crash could lose the audit lines of calls that returned")
    return problems


def production_problems(
    settings: object, environ: Mapping[str, str] | None = None, deployment: DeploymentSettings | None = None
) -> list[str]:
    """Every setting of this process that is fit only for development, each naming its variable.

    `settings` is the service's settings object: a check applies when it has the field (duck-typed, so this module
    needs no service's code). `environ` holds the process-wide flags (TLS_*, TGM_INSECURE_DEV)."""
    env = os.environ if environ is None else environ
    deployment = deployment or DeploymentSettings()
    problems = _process_problems(env) + _messaging_problems(settings) + _endpoint_problems(settings)
    problems += _vault_problems(settings)
    dsn = deployment.sentry_dsn.get_secret_value()
    if dsn and urlsplit(dsn).scheme != "https":
        problems.append("SENTRY_DSN is not https: error events would cross the network in clear")
    return problems


def production_refusal(
    prog: str,
    settings: object,
    also: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    deployment: DeploymentSettings | None = None,
) -> str | None:
    """The message `prog` prints before exiting 2, or None to start. `also`: the caller's own production problems."""
    deployment = deployment or DeploymentSettings()
    if deployment.app_env not in APP_ENVS:
        return f"{prog}: refusing to start: APP_ENV must be one of {', '.join(APP_ENVS)} (got {deployment.app_env!r})"
    if deployment.app_env != PRODUCTION:
        return None
    problems = [*also, *production_problems(settings, environ, deployment)]
    if not problems:
        return None
    listed = "\n".join(f"  - {problem}" for problem in problems)
    return f"{prog}: refusing to start with APP_ENV=prod, {len(problems)} insecure setting(s):\n{listed}"
