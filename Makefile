# attnscope: `make demo` and `make test` each do all set-up on a fresh machine, idempotently:
# Debian packages (GoogleTest, Eigen) when missing, a virtual environment in .venv, torch 2.13.0 (CPU) when no
# torch is installed, the build tools and test dependencies, the build, then the job.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_INSTALL := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt
BUILD_DIR := build/release
JOBS ?= 2
PYTEST_ARGS ?=
export CMAKE_BUILD_PARALLEL_LEVEL := $(JOBS)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

CXX_SOURCES := $(shell find cpp cmake tests/cpp -type f 2>/dev/null) CMakeLists.txt pyproject.toml

.PHONY: FORCE all setup build test test-cpp test-python test-sanitize fuzz demo bench docs clean distclean

all: test

# --- set-up ----------------------------------------------------------------------------------------
$(VENV)/.system-deps:
	@bash .ci/install-system-deps.sh
	@mkdir -p $(VENV) && touch $@

$(VENV)/.torch: | $(VENV)/.system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || { echo "installing torch 2.13.0 (CPU)"; $(PIP_INSTALL) torch==2.13.0; }
	@$(PY) -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') and not torch.version.cuda else 'this venv has torch ' + v + ' (need 2.13.0, CPU)')"
	@touch $@

$(VENV)/.deps: requirements-dev.txt constraints.txt $(VENV)/.torch
	@echo "installing build tools and test dependencies"
	@$(PIP_INSTALL) -r requirements-dev.txt
	@touch $@

setup: $(VENV)/.deps

# --- build (editable: Python from python/attnscope, the extension from build/release) -------------------
# The editable install maps the package's files when it is made: a file added, removed or turned into a package
# needs a re-install, so the list of Python files is a prerequisite too (rewritten only when it changes).
$(VENV)/.pyfiles: FORCE $(VENV)/.deps
	@find python -name '*.py' | sort > $@.new; cmp -s $@.new $@ || mv $@.new $@; rm -f $@.new

$(VENV)/.build: $(CXX_SOURCES) $(VENV)/.deps $(VENV)/.pyfiles
	@echo "building attnscope (C++ extension + GoogleTest) in $(BUILD_DIR)"
	@start=$$(date +%s); $(PIP_INSTALL) --no-build-isolation --no-deps -e . && touch -d "@$$start" $@
	@# (the stamp takes the start time: a source saved during the build is newer and triggers the next one)

build: $(VENV)/.build

# --- jobs ------------------------------------------------------------------------------------------------
test-cpp: build
	@if [ -f $(BUILD_DIR)/CTestTestfile.cmake ]; then \
		ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS); \
	else echo "error: no C++ tests in $(BUILD_DIR) (is libgtest-dev installed?)"; exit 1; fi

test-python: build
	@$(PY) -m pytest --durations=20 --timeout=600 --nbmake --nbmake-timeout=300 tests/python notebooks $(PYTEST_ARGS)

# ctest first, pytest last: pytest's summary line closes the output.
test: test-cpp
	@$(MAKE) --no-print-directory test-python

# The C++ core and its GoogleTest executables built with AddressSanitizer and UndefinedBehaviorSanitizer in their own
# tree (not the extension: the Python interpreter is not instrumented), then run; any UBSan report fails the run.
# A compiler launcher such as ccache is used when CMAKE_CXX_COMPILER_LAUNCHER names one, never required.
SANITIZE_DIR := build/sanitize
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g1
test-sanitize: $(VENV)/.deps
	@cmake -S . -B $(SANITIZE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DATTNSCOPE_BUILD_EXTENSION=OFF \
		-DPython_EXECUTABLE=$(abspath $(PY)) -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) \
		-DCMAKE_CXX_FLAGS="$(SANITIZE_FLAGS)" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null
	@cmake --build $(SANITIZE_DIR) -j $(JOBS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1 \
		LSAN_OPTIONS=suppressions=$(abspath cmake/lsan.supp):print_suppressions=0 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		ctest --test-dir $(SANITIZE_DIR) --output-on-failure -j $(JOBS)

# Property tests (Hypothesis) of every op against its plain-torch reference: `make test` runs them derandomized with
# a bounded example count; `make fuzz` runs the random profile with FUZZ_EXAMPLES examples per property.
FUZZ_EXAMPLES ?= 20000
fuzz: build
	@HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider \
		--hypothesis-show-statistics tests/python/test_ops_properties.py

demo: build
	@$(PY) -m attnscope.demo

bench: build
	@# bench.generation creates bench/.env (inseq 0.7.1, bench-only, --no-deps) through bench/setup_env.sh when it is
	@# missing; if that fails it reports inseq as unavailable, with the reason, and times Captum alone.
	@$(PY) -m bench

docs: $(VENV)/.deps
	@NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf build dist $(VENV)/.build

distclean: clean
	rm -rf $(VENV)
