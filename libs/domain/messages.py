"""The message catalogue: every user-facing reply, in pt-BR (fallback) and en."""

from __future__ import annotations

DEFAULT_LANGUAGE = "pt-BR"

CATALOGUE: dict[str, dict[str, str]] = {
    "welcome": {
        "pt-BR": "👋 Olá! Eu sou @{username}. Como posso ajudar?",
        "en": "👋 Hi! I am @{username}. How can I help?",
    },
    "rate_limited": {
        "pt-BR": "⏳ Muitos comandos em pouco tempo. Aguarde {seconds} segundos.",
        "en": "⏳ Too many commands in a short time. Wait {seconds} seconds.",
    },
    "cooldown": {
        "pt-BR": "⏸️ Processando sua solicitação anterior...",
        "en": "⏸️ Processing your previous request...",
    },
    "locked": {
        "pt-BR": "🔒 Operação em andamento. Aguarde.",
        "en": "🔒 Operation in progress. Please wait.",
    },
    "callback_invalid": {
        "pt-BR": "⚠️ Essa ação não é válida mais.",
        "en": "⚠️ This action is no longer valid.",
    },
    "secret_saved": {
        "pt-BR": "✅ Dado sensível salvo com segurança.",
        "en": "✅ Sensitive data stored securely.",
    },
}


def language_for(language_code: str | None) -> str:
    """Maps Telegram's language_code to a catalogue language (pt-BR when unknown)."""
    if language_code and language_code.lower().startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


def render(key: str, language_code: str | None, **values: object) -> str:
    texts = CATALOGUE[key]
    return texts[language_for(language_code)].format(**values)
