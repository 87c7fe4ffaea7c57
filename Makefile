# bridgeledger — the two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv and install what they need on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CORE_STAMP := $(VENV)/.core-stamp
CORE_SRC := native/Cargo.toml native/Cargo.lock native/build.rs native/pyproject.toml \
            native/bridgeledger_core.pyi $(wildcard native/src/*.rs)
# rustup puts cargo in ~/.cargo/bin, which a non-login shell (CI) may not have on PATH.
export PATH := $(PATH):$(HOME)/.cargo/bin

.PHONY: install demo test test-unit chaos lint stack-up stack-down stack-status bench bench-readside mutation clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[agent,streams,dashboards,dev]'
	touch $(STAMP)

# The stream worker's compiled core (native/, Rust + PyO3; streams/core.py), rebuilt
# when its sources change. Needs cargo (https://rustup.rs); the build fetches its
# crates from crates.io at the versions in native/Cargo.lock.
$(CORE_STAMP): $(STAMP) $(CORE_SRC)
	@command -v cargo >/dev/null || { echo "make install: the stream worker's compiled core (native/) needs Rust's cargo on PATH: install it from https://rustup.rs" >&2; exit 1; }
	CARGO_TARGET_DIR=$(CURDIR)/native/target $(BIN)/python -m pip install -q --force-reinstall --no-deps ./native
	touch $(CORE_STAMP)

install: $(STAMP) $(CORE_STAMP)

# The whole pipeline on the real local stack; leaves the stack running.
demo: install
	$(BIN)/bridgeledger demo

# Unit + integration tests; the test stack (its own state dir and ports) is
# started once per session by tests/conftest.py. pytest's "no tests" (exit 5)
# is a failure here.
test: install lint
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests ran" >&2; exit 1; fi; exit $$rc

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

chaos: install
	$(BIN)/python -m pytest -m chaos

test-unit: install
	$(BIN)/python -m pytest -m "not integration"

stack-up: install
	$(BIN)/bridgeledger stack up
stack-down: install
	$(BIN)/bridgeledger stack down
stack-status: install
	$(BIN)/bridgeledger stack status

bench: install
	$(BIN)/python bench/agent.py
	$(BIN)/python bench/pipeline.py --windows 40000 --profile .state-bench/worker-profile.txt
	$(BIN)/python bench/consume.py --windows 20000
	$(BIN)/python bench/worker.py
	$(BIN)/python bench/resend_check.py

# The read side at a month of data (about two hours on 2 cores: three sizes up to 20 million
# entries, each timed; then the panels and the statement on that month copied up to 7 times,
# ~140 million entries; docs/benchmarks.md). Not part of `make bench`.
bench-readside: install
	$(BIN)/python bench/readside.py --nodes 1,2,6 --days 30
	$(BIN)/python bench/readside.py --replicate 1,3,7

# Mutation testing of the accounting core against the unit tests (most of an
# hour on 2 cores; not part of CI). Scores and the surviving mutants judged
# equivalent are in docs/testing.md; `mutmut results` lists the survivors.
mutation: install
	$(BIN)/python -m pip install -q -e '.[mutation]'
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/python tools/mutation_report.py

clean:
	-$(BIN)/bridgeledger stack down
	rm -rf $(VENV) .state .state-test mutants
