# Two entry points: `make demo` runs the platform on its embedded defaults, `make test` runs the tests.
# Both build the environment first when it is missing (uv, then .venv from uv.lock) and are idempotent.

PYTHON     ?= python3.11
UV_VERSION := 0.13.9
UV         := .tools/bin/uv
VENV       := .venv
BIN        := $(VENV)/bin
UDF_HOME   ?= $(CURDIR)/.udf
PYTEST_ARGS ?=
TEST_WORKERS ?= 2

export UV_PYTHON_DOWNLOADS := never
export UDF_HOME

.PHONY: env demo test lint clean-demo

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target .tools uv==$(UV_VERSION)

# --compile-bytecode: the libraries' bytecode is written once, here. A process that cannot or
# may not write it (PYTHONDONTWRITEBYTECODE) would otherwise compile every module it imports,
# every time: 3.7 s instead of 1.2 s to import PyFlink, SciPy and pandas, in each test
# process, each `udf` command and each Flink job's Python sinks (docs/benchmarks.md,
# "2026-12-06").
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON) --compile-bytecode
	@touch $@

env: $(VENV)/.synced
	-@$(BIN)/python -m streaming.jvm > /dev/null  # the stream's Java functions, ahead (without a JDK only the stream needs them)

demo: env
	$(BIN)/python -m udf.demo

test: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy udf metadata stats metric_types results streaming dags plugins
# The tests run as pytest processes, one folder each, TEST_WORKERS (default 2) at a time,
# longest folders first: tests/run_parallel.py. Unit tests keep a process of their own (they
# run 3-4x slower in a process that has already run the engines' tests).
ifeq ($(strip $(PYTEST_ARGS)),)
	$(BIN)/python -m tests.run_parallel --workers $(TEST_WORKERS)
else
	$(BIN)/pytest $(PYTEST_ARGS)
endif

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ruff check --preview --select AIR dags udf plugins

clean-demo:
	rm -rf $(UDF_HOME)
