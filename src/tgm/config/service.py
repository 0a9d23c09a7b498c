"""Settings a service reads from its environment the strict way: a value is never echoed in an error, an empty
variable counts as unset, and a bad value stops the start with one error naming only the variables."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

Settings = TypeVar("Settings", bound=BaseSettings)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        hide_input_in_errors=True,
        env_ignore_empty=True,
    )

    log_level: str = "INFO"
    # Prometheus `/metrics` and `/healthz` + `/readyz` on their own small HTTP server; 0 = off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0


def load_from_env(settings: type[Settings], error: type[Exception], service: str) -> Settings:
    """`settings()` from the environment; pydantic's errors become one `error` that names the variables only."""
    try:
        return settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']).upper()}: {problem['msg']}" for problem in exc.errors()
        )
        raise error(f"invalid {service} settings: {problems}") from None
