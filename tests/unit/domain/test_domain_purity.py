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


# Telegram's presentation: markup shapes, parse modes, HTML escaping and HTML written in code (docs/adr/007). The domain
# says what (src/tgm/domain/view.py); src/tgm/services/dispatcher/presentation/ says how it looks. A closing tag marks
# HTML in code ("<code>" alone also reads as a placeholder in comments).
PRESENTATION_MARKS = ("inline_keyboard", "reply_markup", "parse_mode", "remove_keyboard", "html.escape", "</")
# Where a mark is the module's own business: the catalogue is written in HTML (the renderer sends it as written), and
# the typed Bot API calls declare Telegram's fields (the outbound side's, issue 14 item 1). Nothing else.
ALLOWED_MARKS = {"messages.py": {"</"}, "outbound.py": {"parse_mode", "reply_markup"}}


def presentation_in(path: str, source: str) -> list[str]:
    """The marks of Telegram presentation in a domain module (`path` relative to src/tgm/domain) that it may not hold;
    importing the html module (escaping) counts as "import html" wherever it is."""
    allowed = ALLOWED_MARKS.get(path, set())
    marks = [mark for mark in PRESENTATION_MARKS if mark in source and mark not in allowed]
    return marks + ["import html"] * ("html" in imported_roots(source))


def test_checker_sees_presentation() -> None:
    source = 'import html\nmarkup = {"inline_keyboard": []}\nline = f"<b>{html.escape(name)}</b>"\n'
    assert presentation_in("inbox.py", source) == ["inline_keyboard", "html.escape", "</", "import html"]
    assert presentation_in("captcha.py", "from html import escape as e\n") == ["import html"]
    call = 'SendMessage(1, text, parse_mode="HTML", reply_markup={"remove_keyboard": True})'
    assert presentation_in("use_cases/broadcast.py", call) == ["reply_markup", "parse_mode", "remove_keyboard"]


def test_only_the_catalogue_may_hold_html_and_only_the_typed_calls_name_telegram_fields() -> None:
    assert presentation_in("messages.py", '"<b>{name}</b>"') == []
    assert presentation_in("messages.py", '{"inline_keyboard": []}\nimport html\n') == [
        "inline_keyboard",
        "import html",
    ]
    assert presentation_in("outbound.py", "parse_mode: str | None\nreply_markup: dict | None\n") == []
    assert presentation_in("outbound.py", 'text = "<b>x</b>"') == ["</"]
    assert presentation_in("manager_bot/messages.py", '"<b>x</b>"') == ["</"]  # the catalogue is one file, by path
    # The exemptions are in use: dropping one would make the test below fail on the real module.
    assert presentation_in("", (DOMAIN / "messages.py").read_text()) == ["</"]
    assert presentation_in("", (DOMAIN / "outbound.py").read_text()) == ["reply_markup", "parse_mode"]


def test_the_domain_holds_no_telegram_presentation() -> None:
    files = {str(path.relative_to(DOMAIN)): path for path in sorted(DOMAIN.rglob("*.py"))}
    assert {"captcha.py", "inbox.py", "broadcast.py", "use_cases/broadcast.py", "manager_bot/bot.py"} <= set(files)
    offenders = {name: presentation_in(name, path.read_text()) for name, path in files.items()}
    assert {name: marks for name, marks in offenders.items() if marks} == {}
