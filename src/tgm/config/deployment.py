"""What every process reads the same way, whatever its service: the deployment's name and error tracking."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT = "dev"
PRODUCTION = "prod"
APP_ENVS = (DEVELOPMENT, PRODUCTION)


class DeploymentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    # `dev` (make run, the tests) or `prod`: a production process refuses to start on any setting fit only for
    # development (src/tgm/config/production.py). Also the `environment` of error-tracking events.
    app_env: str = DEVELOPMENT
    # Error tracking (src/tgm/observability/error_tracking.py): off while empty.
    sentry_dsn: SecretStr = SecretStr("")
    # The events' `release`; empty: tgm@<the installed package's version>.
    sentry_release: str = ""
    # The vault, which holds the keys and sees plaintext tokens, sends nothing to a third party unless this is on too.
    sentry_vault_enabled: bool = False
