"""Domain errors: each names what went wrong in words a caller can act on."""


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    # True when a dependency is down for now and the same work succeeds once it is back (see DependencyUnavailable).
    transient: bool = False


class DependencyUnavailable(DomainError):
    """A service tgm depends on (vault, registry, Telegram) could not be reached or failed for now.

    Work that fails with it waits and is retried (capped backoff) while the dependency is down, instead of being
    dead-lettered after a few quick attempts as a poison update is (issue 10: a vault down for 30 s loses nothing).
    """

    transient = True


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same work later can succeed (a dependency was down), as opposed to a permanent failure."""
    return isinstance(error, DomainError) and error.transient


class InvalidToken(DomainError):
    """Text that is not shaped like a Telegram bot token."""


class TokenRejected(DomainError):
    """Telegram refused the token (getMe answered 401/404): revoked or never valid."""


class BotOwnedByAnotherAdmin(DomainError):
    """The bot is registered by someone else; who is not said."""


class BotNotFound(DomainError):
    """No bot with that id (or not visible to the caller)."""


class ActionNotPermitted(DomainError):
    """The actor has a role on the bot, not one that may do this (an admin deleting it: src/tgm/domain/bot_roles.py).

    Says who tried what on which bot, for the event trail (ids and labels only)."""

    def __init__(self, message: str, actor_id: int = 0, bot_id: str | None = None, action: str = "", role: str = ""):
        super().__init__(message)
        self.actor_id, self.bot_id, self.action, self.role = actor_id, bot_id, action, role


class IllegalTransition(DomainError):
    """A bot status change the state machine does not allow."""


class TelegramUnavailable(DependencyUnavailable):
    """Telegram could not be reached or failed; the call may be retried."""


class TelegramRequestFailed(DomainError):
    """Telegram answered ok=false for a reason other than the token."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(f"Telegram error {error_code}: {description}")
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after


BLOCKED_BY_USER = "bot was blocked by the user"


def blocked_by_user(error: BaseException) -> bool:
    """Telegram's 403 "Forbidden: bot was blocked by the user": the user blocked the bot (issue 15)."""
    return (
        isinstance(error, TelegramRequestFailed)
        and error.error_code == 403
        and BLOCKED_BY_USER in error.description.lower()
    )


class VaultUnavailable(DependencyUnavailable):
    """The vault could not be reached or refused the call."""


class ConcurrentUpdate(DomainError):
    """The bot changed (or was deleted) since it was read: the write was refused; read again and retry."""


class SecretRejected(VaultUnavailable):
    """The vault refused to open a ciphertext: not sealed for this bot, kind or context (e.g. another sender)."""

    transient = False  # the same ciphertext is refused again
