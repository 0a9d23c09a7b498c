"""What `pip install .` (the Docker image, `make install`) puts in site-packages: the code a deployment runs, not the
repository's test and benchmark tooling, under top-level names no other installed distribution claims
(docs/adr/005-package-layout.md: pip overwrites another distribution's files without a word)."""

from __future__ import annotations

import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from setuptools import find_namespace_packages

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL = ("tgm",)  # one name, ours (docs/adr/005)
REPO_ONLY = ("tests", "bench", "testbed", "scripts", "deploy", "docs")


def _shipped() -> set[str]:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    where = [ROOT / folder for folder in find.get("where", ["."])]
    return {
        p
        for w in where
        for p in find_namespace_packages(str(w), include=find["include"], exclude=find.get("exclude", ()))
    }


def test_the_wheel_ships_the_services_and_not_the_repository_tooling() -> None:
    shipped = _shipped()
    assert {"tgm.services.gateway", "tgm.services.vault", "tgm.domain", "tgm.apps.cli", "tgm.vault.v1"} <= shipped
    assert {"tgm.tools.devstack", "tgm.tools.telegram_emulator"} <= shipped  # `tgm run` and compose's certificate step
    leaked = sorted(p for p in shipped if any(p == r or p.startswith(r + ".") for r in REPO_ONLY))
    assert leaked == []
    assert {p.split(".")[0] for p in shipped} == set(TOP_LEVEL)


def test_no_other_installed_distribution_claims_our_top_level_names() -> None:
    owners = packages_distributions()
    assert {name: sorted(set(owners.get(name, ["tgm"]))) for name in TOP_LEVEL} == {name: ["tgm"] for name in TOP_LEVEL}
