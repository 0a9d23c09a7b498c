# tgm — the two commands that matter: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install proto lint typecheck unit e2e bench clean certs backup restore

run: $(STAMP)  ## the whole stack on embedded defaults, with the Telegram emulator
	$(BIN)/python -m tgm.tools.devstack

test: $(STAMP) system-deps lint  ## lint, types, then every test on real PostgreSQL + Redis
	$(BIN)/pytest

install: $(STAMP)

certs: $(STAMP)  ## local CA + one mTLS certificate per service in .run/certs (idempotent; `make run` does it too)
	$(BIN)/python -m tgm.tools.devstack.certs --out .run/certs

backup: $(STAMP)  ## encrypted archive of the database + vault keyring/audit log: make backup OUT=FILE (BACKUP_KEY)
	@test -n "$(OUT)" || { echo "usage: make backup OUT=FILE (BACKUP_KEY set)" >&2; exit 2; }
	$(BIN)/tgm backup --out "$(OUT)"

restore: $(STAMP)  ## into an empty database and vault folder only: make restore FILE=ARCHIVE (BACKUP_KEY)
	@test -n "$(FILE)" || { echo "usage: make restore FILE=ARCHIVE (BACKUP_KEY set)" >&2; exit 2; }
	$(BIN)/tgm restore "$(FILE)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "tgm needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version 2>&1 || echo missing)." \
	       "Install it, then: make clean; make $(MAKECMDGOALS) PYTHON=python3.11" >&2; exit 1; }
	@echo "setting up .venv (the first time downloads the Python packages: a minute or two)..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q -e '.[dev]'
	@echo ".venv ready"
	touch $(STAMP)

.PHONY: system-deps
system-deps:
	bash scripts/install-system-deps.sh

proto: $(STAMP)  ## regenerate gRPC stubs into src/tgm/{vault,registry}/ (idempotent)
	PYTHON=$(BIN)/python bash scripts/gen_proto.sh
	$(BIN)/buf lint

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

e2e: $(STAMP) system-deps
	$(BIN)/pytest tests/e2e

bench: $(STAMP) system-deps  ## gateway vs peers, end to end, vault, RSS → one table + bench/results/latest.json (BENCH_QUICK=1: ~2 min)
	bash scripts/install-bench-deps.sh
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache
