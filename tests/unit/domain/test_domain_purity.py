"""src/tgm/domain must import no framework: the hexagon's core stays pure."""

import ast
from pathlib import Path

FORBIDDEN = {
    "fastapi", "starlette", "sqlalchemy", "grpc", "redis", "dramatiq", "httpx", "cryptography",
    "uvicorn", "alembic", "psycopg", "pydantic", "dependency_injector", "pybreaker", "tgm",
    "services", "tools",
}  # fmt: skip
DOMAIN = Path(__file__).resolve().parents[3] / "libs" / "domain"


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_checker_sees_framework_imports() -> None:
    assert imported_roots("import grpc\nfrom sqlalchemy.orm import Session\n") == {"grpc", "sqlalchemy"}


def test_domain_imports_no_framework() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert files, "src/tgm/domain has no modules?"
    offenders = {str(path.relative_to(DOMAIN)): sorted(imported_roots(path.read_text()) & FORBIDDEN) for path in files}
    assert {name: bad for name, bad in offenders.items() if bad} == {}
