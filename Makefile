# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv, install the package and make Fashion-MNIST available offline.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/quickstart
EXPORT_DIR ?= exports/fashion_mnist

.PHONY: install data run test lint format bench bench-accuracy bench-step bench-pipeline bench-serving bench-epoch bench-scaling bench-labels clean figures

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,serving,bench]'
	touch $(STAMP)

install: $(STAMP)

# Debian's dataset-fashion-mnist package when apt is there, else keras' own loader.
data: $(STAMP)
	bash tools/get_fashion_mnist.sh $(PY)

# --overwrite: `make run` is the demo, so running it again trains again
# (train.py otherwise refuses to replace a finished run).
run: install data
	$(PY) tools/train.py --flagfile=tools/configs/fashion_mnist.flags --method=baseline \
		--model_dir=$(RUN_DIR)/baseline --overwrite
	$(PY) tools/train.py --flagfile=tools/configs/fashion_mnist.flags --method=metacleaner \
		--model_dir=$(RUN_DIR)/metacleaner --overwrite --baseline_results=$(RUN_DIR)/baseline/results.json \
		--export_dir=$(EXPORT_DIR)

test: install data
	$(PY) -m pytest -q -n 2 --durations=15

lint: install
	$(VENV)/bin/ruff check keras_metacleaner tools tests benchmarks
	$(VENV)/bin/ruff format --check keras_metacleaner tools tests benchmarks
	$(VENV)/bin/mypy keras_metacleaner/layers keras_metacleaner/models

format: install
	$(VENV)/bin/ruff check --fix keras_metacleaner tools tests benchmarks
	$(VENV)/bin/ruff format keras_metacleaner tools tests benchmarks

bench-accuracy: install data
	$(PY) benchmarks/accuracy.py

bench-step: install
	$(PY) benchmarks/step_time.py

bench-pipeline: install data
	$(PY) benchmarks/pipeline_throughput.py

bench-serving: install data
	$(PY) benchmarks/serving_latency.py

# Label issues against a plain classifier and cleanlab: 3 noises x 3 seeds, resumable.
bench-labels: install data
	$(PY) benchmarks/label_issues.py

bench-epoch: install data
	$(PY) benchmarks/epoch_throughput.py --results_md=docs/results.md

bench-scaling: install data
	$(PY) benchmarks/scaling.py --results_md=docs/results.md

bench: bench-step bench-pipeline bench-serving bench-epoch bench-scaling bench-accuracy bench-labels

# The notebooks in full mode (QUICK=False; hours on a CPU), their figures into docs/figures/;
# the executed copies go to runs/notebooks/. `make test` runs them in quick mode instead.
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
figures: install data
	mkdir -p docs/figures runs/notebooks
	for nb in $(NOTEBOOKS); do \
		$(PY) -m papermill $$nb runs/notebooks/$$(basename $$nb) --cwd runs/notebooks \
			-p QUICK False -p FIGURES_DIR $(CURDIR)/docs/figures || exit 1; \
	done

clean:
	rm -rf $(VENV) runs exports .pytest_cache
