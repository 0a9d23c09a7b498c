"""src/tgm/domain must import no framework and nothing of tgm but itself: the hexagon's core stays pure."""

import ast
from pathlib import Path

FORBIDDEN = {
    "fastapi", "starlette", "sqlalchemy", "grpc", "redis", "dramatiq", "httpx", "cryptography",
    "uvicorn", "alembic", "psycopg", "pydantic", "dependency_injector", "pybreaker", "tgm",
}  # fmt: skip
DOMAIN = Path(__file__).resolve().parents[3] / "src" / "tgm" / "domain"


def _root(module: str) -> str:
    """The first name, except that tgm.domain (allowed) is told apart from the rest of tgm (forbidden)."""
    return "tgm.domain" if module == "tgm.domain" or module.startswith("tgm.domain.") else module.split(".")[0]


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {_root(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(_root(node.module))
    return roots


def test_checker_sees_framework_imports() -> None:
    assert imported_roots("import grpc\nfrom sqlalchemy.orm import Session\n") == {"grpc", "sqlalchemy"}
    source = "from tgm.domain.clock import Clock\nimport tgm.services.gateway\nfrom tgm.vault.v1 import vault_pb2\n"
    assert imported_roots(source) == {"tgm.domain", "tgm"}


def test_domain_imports_no_framework() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert files, "src/tgm/domain has no modules?"
    offenders = {str(path.relative_to(DOMAIN)): sorted(imported_roots(path.read_text()) & FORBIDDEN) for path in files}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


# Telegram's presentation: markup shapes, parse modes, HTML escaping (docs/adr/007). The manager bot's package says what
# to say; src/tgm/services/dispatcher/manager_bot/presentation/ says how it looks.
# A closing tag marks HTML written in code ("<code>" alone also reads as a placeholder in comments).
PRESENTATION_MARKS = ("inline_keyboard", "reply_markup", "parse_mode", "remove_keyboard", "import html", "</")


def presentation_marks(source: str) -> list[str]:
    return [mark for mark in PRESENTATION_MARKS if mark in source]


def test_checker_sees_presentation() -> None:
    source = 'import html\nmarkup = {"inline_keyboard": []}\nline = f"<b>{name}</b>"\n'
    assert presentation_marks(source) == ["inline_keyboard", "import html", "</"]


def test_the_manager_bot_package_holds_no_telegram_presentation() -> None:
    files = sorted((DOMAIN / "manager_bot").glob("*.py"))
    assert files, "src/tgm/domain/manager_bot has no modules?"
    offenders = {path.name: presentation_marks(path.read_text()) for path in files}
    assert {name: marks for name, marks in offenders.items() if marks} == {}
