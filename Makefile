# The few verbs everyone runs. `make check` is what CI runs (.ci/run) and what the README gives.
PYTHON ?= python3
PYTEST ?= $(PYTHON) -m pytest
ASAN_LIB = $(shell gcc -print-file-name=libasan.so)
# The C-facing suites: every C entry point is reached through them (the DataPlane of fastlb._core, and the
# hooks of fastlb._testhooks: `asan` builds and runs both).
C_SUITES = $(wildcard tests/engine tests/balance tests/http1 tests/l7 tests/tls)

.PHONY: help deps build debug test test-all asan fuzz fuzz-replay bench lint fmt check clean

help:
	@echo "make deps      install Debian packages (as root) and Python packages"
	@echo "make build     build fastlb._core (and fastlb._testhooks, for the tests) in place (editable install)"
	@echo "make test      the test suite"
	@echo "make asan      build with ASan+UBSan and run the C-facing suites on it"
	@echo "make check     deps + test + lint + asan: what CI runs"
	@echo "make bench     the L4 benchmark against HAProxy and a direct connection"
	@echo "make fuzz      run the HTTP parser fuzzer (needs clang)"
	@echo "make lint      ruff check + mypy, check only"

deps:
	bash .ci/install-deps

build:
	$(PYTHON) -m pip install -q --no-build-isolation -e '.[test]'

debug:
	FASTLB_DEBUG=1 $(PYTHON) setup.py -q build_ext --inplace --force

test: build
	$(PYTEST) -q

test-all: test

asan:
	FASTLB_SANITIZE=1 $(PYTHON) setup.py -q build_ext --inplace --force
	LD_PRELOAD=$(ASAN_LIB) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 PYTHONMALLOC=malloc \
	$(PYTEST) -q -p no:cacheprovider -m "not slow" $(C_SUITES); \
	status=$$?; $(PYTHON) setup.py -q build_ext --inplace --force; exit $$status

check: deps
	$(MAKE) test
	$(MAKE) lint
	$(MAKE) asan

fuzz:
	$(MAKE) -C fuzz fuzz
	@echo "run it: see fuzz/README.md"

fuzz-replay:
	$(MAKE) -C fuzz replay

bench:
	$(PYTHON) bench/l4.py

# No `ruff format`: the code keeps its own wrapping (aligned continuation lines, short lists packed on
# one line), which ruff format would rewrite in 66 of the 161 Python files.
lint:
	$(PYTHON) -m ruff check fastlb tests bench
	$(PYTHON) -m mypy fastlb

fmt:
	$(PYTHON) -m ruff check --fix fastlb tests bench

clean:
	rm -rf build dist *.egg-info fastlb/_core.c fastlb/_testhooks.c fastlb/*.so .pytest_cache .hypothesis
