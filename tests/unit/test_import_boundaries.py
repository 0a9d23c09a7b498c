"""Who may import whom across the top-level folders: nothing outside tests/ imports `tests`, and the code a
deployment runs (src/tgm) imports neither `bench` nor the throwaway servers of `testbed`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "src": ("tests", "bench", "testbed"),
    "bench": ("tests",),
    "testbed": ("tests", "bench"),
}


def imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_checker_sees_nested_and_from_imports() -> None:
    source = "def f():\n    from tests.support.fake_vault import X\nimport testbed.redis_server\n"
    assert imported_modules(source) == {"tests.support.fake_vault", "testbed.redis_server"}
    assert _matches("testbed.postgres", "testbed") and not _matches("testsuite", "tests")


def test_no_folder_imports_what_it_must_not() -> None:
    offenders = {}
    for folder, prefixes in FORBIDDEN.items():
        assert (ROOT / folder).is_dir(), f"{folder}/ moved? Update FORBIDDEN (docs/adr/005-package-layout.md)"
        for path in sorted((ROOT / folder).rglob("*.py")):
            bad = sorted(m for m in imported_modules(path.read_text()) if any(_matches(m, p) for p in prefixes))
            if bad:
                offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}
