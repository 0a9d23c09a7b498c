"""The manager bot's commands: their names, their usage texts, how a message's command is read."""

from __future__ import annotations

from tgm.domain.bots import RateRule

MANAGER_COMMANDS = frozenset(
    {
        "/start",
        "/help",
        "/cancel",
        "/addbot",
        "/newbot",
        "/mybots",
        "/setwelcome",
        "/setcommand",
        "/setapi",
        "/delcommand",
        "/maintenance",
        "/block",
        "/unblock",
        "/limits",
        "/captcha",
        "/subscribers",
        "/broadcast",
        "/inbox",
        "/invite",
        "/join",
        "/admins",
        "/leave",
    }
)

USAGE_KEYS = {
    "/setwelcome": "usage_setwelcome",
    "/setcommand": "usage_setcommand",
    "/setapi": "usage_setapi",
    "/delcommand": "usage_delcommand",
    "/maintenance": "usage_maintenance",
    "/block": "usage_block",
    "/unblock": "usage_unblock",
    "/limits": "usage_limits",
    "/captcha": "usage_captcha",
    "/subscribers": "usage_subscribers",
    "/broadcast": "usage_broadcast",
    "/inbox": "usage_inbox",
    "/invite": "usage_invite",
    "/join": "usage_join",
    "/admins": "usage_admins",
    "/leave": "usage_leave",
}

# Invite codes are unguessable (192 bits); still, each user gets a bounded number of redeem attempts: the inbound guard
# limits these manager-bot actions per user (/start carries a code from the invite link). The manager bot's own limits
# set in the registry, if any, come first.
REDEEM_RATE_LIMITS = {"cmd:/join": RateRule(10, 600.0), "cmd:/start": RateRule(10, 600.0)}


def split_command(text: str) -> tuple[str | None, str]:
    """'/addbot@Mgr  x y' → ('/addbot', 'x y'); not a command → (None, text)."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None, stripped
    head, _, rest = stripped.partition(" ")
    return head.partition("@")[0].lower(), rest.strip()
