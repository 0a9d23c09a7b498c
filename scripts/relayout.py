"""The package move of docs/adr/005-package-layout.md, as one mechanical step: `python scripts/relayout.py`.

From the repository root, on a clean tree. It `git mv`s the hand-written packages under `src/tgm/` (and the
repo-only servers to `testbed/`), rewrites every dotted module name and every path in tracked text files, writes
the new scripts/gen_proto.sh and the pyproject/Dockerfile lines that are not a plain rename, and lists what it
cannot rewrite safely (path pieces such as `ROOT / "libs" / "domain"`, checks on a module's first name) for a
person to fix. It changes files only; reviewing, `make proto`, `ruff check --fix`, `ruff format`, `pip install -e .` and
the tests come after (the ADR's "Order"). `--dry-run` prints the moves and the rewrite counts and touches nothing.
Idempotent: on an already moved tree it finds nothing to move and nothing to rewrite.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".pyi", ".md", ".toml", ".yml", ".yaml", ".ini", ".cfg", ".sh", ".txt", ".json", ".mako"}
TEXT_SUFFIXES |= {".proto"}  # comments name files; `make proto` carries them into the stubs
TEXT_NAMES = {"Makefile", "Dockerfile", "run", ".gitignore"}


def _packages(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def moves(root: Path) -> list[tuple[str, str]]:
    """(old path, new path), one per package; what is gone already (a second run) is skipped."""
    pairs = [(f"libs/{lib}", f"src/tgm/{lib}") for lib in _packages(root / "libs")]  # libs.domain → tgm.domain
    for top in ("services", "apps"):  # services.gateway → tgm.services.gateway
        pairs += [(f"{top}/{pkg}", f"src/tgm/{top}/{pkg}") for pkg in _packages(root / top)]
        pairs.append((f"{top}/__init__.py", f"src/tgm/{top}/__init__.py"))
    for tool in _packages(root / "tools"):  # shipped (devstack, telegram_emulator: `tgm run`, compose's certificates)
        if tool != "testbed":  # a tool a branch adds before its own run moves with the others
            pairs.append((f"tools/{tool}", f"src/tgm/tools/{tool}"))
    pairs.append(("tools/__init__.py", "src/tgm/tools/__init__.py"))
    pairs.append(("tools/testbed", "testbed"))  # repo-only: never installed
    for generated in ("vault", "registry"):  # the stubs keep their import path (ADR 002): tgm.vault.v1
        pairs.append((f"tgm/{generated}", f"src/tgm/{generated}"))
    return [(old, new) for old, new in pairs if (root / old).exists()]


def rewrites(pairs: list[tuple[str, str]]) -> list[tuple[re.Pattern[str], str]]:
    """Dotted names first (services.gateway.app), then paths (services/gateway/app.py); longest first."""
    rules: list[tuple[re.Pattern[str], str]] = []
    for old, new in sorted(pairs, key=lambda pair: -len(pair[0])):
        if old.endswith(".py"):
            continue
        old_dotted, new_dotted = old.replace("/", "."), new.removeprefix("src/").replace("/", ".")
        rules.append((re.compile(rf"(?<![\w.]){re.escape(old_dotted)}(?![\w])"), new_dotted))
        rules.append((re.compile(rf"(?<![\w./-]){re.escape(old)}(?=[/`'\" )\]:,.]|$)", re.M), new))
    return rules


# What only a person can judge: a path built from pieces, or a check on a module's first name.
SUSPECT = re.compile(r"""(?<!\[)["'](libs|services|apps|tools)["']|split\("\."\)\[0\]|\.parts\[""")
# A folder named without its new prefix, in prose or a path ("libs/{a,b}/", "under services/"); not k8s's apps/v1.
BARE_FOLDER = re.compile(r"(?:^|[^/\w.-])(?:libs|services|tools|apps(?!/v1\b))/")
# Not rewritten: this script and the ADR describe the old names on purpose.
KEEP = {"scripts/relayout.py", "docs/adr/005-package-layout.md"}


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S603, S607
    return done.stdout


def tracked_text_files(root: Path) -> list[Path]:
    paths = [root / name for name in _git("ls-files", "-z").split("\0") if name]
    keep = {root / name for name in KEEP}
    return [
        p
        for p in paths
        if p.is_file()
        and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES)
        and p not in keep
        and "_pb2" not in p.name  # generated: `make proto` rewrites them from the (rewritten) .proto comments
    ]


GEN_PROTO = """#!/usr/bin/env bash
# Regenerates the Python gRPC stubs (and .pyi typings) from proto/ into src/tgm/<package>/, idempotently.
# Only the generated folders are replaced: src/tgm itself is hand-written (docs/adr/005-package-layout.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mapfile -t protos < <(find proto -name '*.proto' | sort)
mapfile -t generated < <(find proto/tgm -mindepth 1 -maxdepth 1 -type d -printf 'src/tgm/%f\\n' | sort)
rm -rf "${generated[@]}"
"$PY" -m grpc_tools.protoc -Iproto \\
  --python_out=src --grpc_python_out=src \\
  --mypy_out=src --mypy_grpc_out=src \\
  --plugin=protoc-gen-mypy="$(dirname "$PY")/protoc-gen-mypy" \\
  --plugin=protoc-gen-mypy_grpc="$(dirname "$PY")/protoc-gen-mypy_grpc" \\
  "${protos[@]}"
# Packages mirror the proto packages (protoc output imports tgm.vault.v1 absolutely).
find "${generated[@]}" -type d \\
  -exec sh -c 'printf "# Generated by make proto; do not edit.\\n" > "$1/__init__.py"' _ {} \\;
"""

# (regular expression, replacement), applied before the renames; a pattern that matches nothing is reported.
PYPROJECT_EDITS = [
    (r'include = \["apps\*".*\]\n(exclude = .*\n)?', 'where = ["src"]\ninclude = ["tgm*"]\n'),
    (r'pythonpath = \["\."\]', 'pythonpath = ["src", "."]'),
    (
        r'extend-exclude = \["tgm", ',
        'src = ["src", "."]\nextend-exclude = ["src/tgm/vault/v1", "src/tgm/registry/v1", ',
    ),
    (r'"tools/\*\*" = (.*)', r'"src/tgm/tools/**" = \1\n"testbed/**" = \1'),
    (r'mypy_path = "\."', 'mypy_path = "src:."'),
]
DOCKERFILE_EDITS = [
    (r"COPY libs libs\nCOPY services services\nCOPY tools tools\nCOPY apps apps\nCOPY tgm tgm\n", "COPY src src\n")
]
TGM_INIT = '"""tgm: the Telegram multi-bot manager. Generated gRPC stubs live in tgm.<service>.v1 (ADR 002)."""\n'


def _mypy_files(path: Path) -> None:
    """After the renames: mypy's `files` list names `apps` bare (no slash to rewrite); fix it and wrap at 120."""
    text = path.read_text()
    found = re.search(r"^files = \[\n(.*?)\n\]", text, re.S | re.M)
    if not found:
        return
    entries = ["src/tgm/apps" if e == "apps" else e for e in re.findall(r'"([^"]+)"', found.group(1))]
    lines, line = [], " "
    for entry in entries:
        if len(line) + len(entry) + 4 > 120:
            lines.append(line)
            line = " "
        line += f' "{entry}",'
    lines.append(line)
    path.write_text(text[: found.start(1)] + "\n".join(lines) + text[found.end(1) :])


def _edit(path: Path, edits: list[tuple[str, str]], dry_run: bool) -> list[str]:
    text, missed = path.read_text(), []
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text, count=1)
        if not count:
            missed.append(f"{path.name}: no match for {pattern!r}")
    if not dry_run:
        path.write_text(text)
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if _git("status", "--porcelain").strip() and not args.dry_run:
        print("relayout: commit or stash first (the tree is not clean)", file=sys.stderr)
        return 2
    pairs = moves(ROOT)
    if not pairs:
        print("relayout: nothing to move (done already)")
        return 0
    missed = _edit(ROOT / "pyproject.toml", PYPROJECT_EDITS, args.dry_run)
    missed += _edit(ROOT / "Dockerfile", DOCKERFILE_EDITS, args.dry_run)
    rules = rewrites(pairs)
    files = tracked_text_files(ROOT)
    changed = 0
    for path in files:  # rewrite before moving: the list of tracked files is the old one
        text = path.read_text(errors="surrogateescape")
        new = text
        for pattern, replacement in rules:
            new = pattern.sub(replacement, new)
        if new != text:
            changed += 1
            if not args.dry_run:
                path.write_text(new, errors="surrogateescape")
    if not args.dry_run:
        _mypy_files(ROOT / "pyproject.toml")
    for old, new in pairs:
        print(f"move {old} -> {new}")
        if not args.dry_run:
            (ROOT / new).parent.mkdir(parents=True, exist_ok=True)
            _git("mv", old, new)
    if not args.dry_run:
        (ROOT / "scripts" / "gen_proto.sh").write_text(GEN_PROTO)
        init = ROOT / "src" / "tgm" / "__init__.py"
        if (ROOT / "tgm" / "__init__.py").exists():
            _git("rm", "-q", "tgm/__init__.py", "tgm/py.typed")
        init.write_text(TGM_INIT)
        (ROOT / "src" / "tgm" / "py.typed").touch()
        for folder in ("services", "apps", "tools"):
            marker = ROOT / "src" / "tgm" / folder / "__init__.py"
            if not marker.exists():
                marker.write_text("")
        if (ROOT / "libs" / "__init__.py").exists():
            _git("rm", "-q", "libs/__init__.py")
        for old_top in ("libs", "services", "apps", "tools", "tgm"):  # left: only __pycache__ folders
            if not _git("ls-files", old_top).strip() and (ROOT / old_top).is_dir():
                shutil.rmtree(ROOT / old_top)
        _git("add", "src/tgm", "scripts/gen_proto.sh")
        for left in _git("ls-files", "libs", "services", "apps", "tools", "tgm").split():  # a loose file: by hand
            print(f"CHECK {left}: still under an old folder (not part of a package; move it by hand)")
    print(f"rewrote {changed} of {len(files)} tracked text files")
    for line in missed:
        print(f"NOT DONE {line}")
    for path in tracked_text_files(ROOT) if not args.dry_run else files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if (path.suffix == ".py" and SUSPECT.search(line)) or (not args.dry_run and BARE_FOLDER.search(line)):
                print(f"CHECK {path.relative_to(ROOT)}:{number}: {line.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
