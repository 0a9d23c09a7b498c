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
