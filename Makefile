# `make run` and `make test` each create .venv when it is missing and install optbench into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/optbench run --preset quick

# The tests' compiled programs are kept in .cache/test-jax between runs (tests/conftest.py).
test: $(STAMP)
	OPTBENCH_TEST_COMPILE_CACHE=.cache/test-jax $(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	mkdir -p results
	$(BIN)/python -m pytest tests/perf -q --benchmark-enable --benchmark-only \
		--benchmark-columns=median,iqr,rounds --benchmark-json=results/bench.json
	$(BIN)/python tools/perf_ratios.py results/bench.json
	OPTBENCH_CPU_DEVICES=auto $(BIN)/python -m pytest tests/perf/test_seed_batching.py -q \
		--benchmark-enable --benchmark-only --benchmark-json=results/bench-cpu-devices.json
	$(BIN)/python tools/perf_ratios.py results/bench-cpu-devices.json

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks .cache
