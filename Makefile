# Entry points for a fresh machine: `make demo` (the embedded demo) and `make test` (the suite) build .venv
# from pinned wheels first; `make demo-model` retrains the shipped demo model (models/demo/).
# `make test-fast` leaves out the slow, DDS and GPU tests (markers in setup.cfg); `make lint` runs ruff.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast lint demo demo-model clean

$(STAMP): requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not ros and not gpu" tests

lint: $(STAMP)
	$(PY) -m ruff check .

# A generated drive through the node with the shipped model; pictures and summary.json in demo_out/.
demo: $(STAMP)
	$(PY) -m hypood_ros.cli demo --out demo_out

# Reproduces models/demo/ from nothing but this repository (2 CPU cores: see models/demo/README.md).
DEMO_WORK ?= build/demo-model
demo-model: $(STAMP)
	rm -rf $(DEMO_WORK)
	$(PY) -m hypood_ros.cli generate cityscapes $(DEMO_WORK)/cityscapes --count 2000 --val 100 --seed 0
	$(PY) -m hypood_ros.cli generate smiyc $(DEMO_WORK)/eval-family --count 100 --seed 900000 --family evaluation
	$(PY) -m hypood_ros.cli generate smiyc $(DEMO_WORK)/training-family --count 100 --seed 900000 --family training
	$(PY) -m hypood_ros.cli train segmentor --config config/demo/segmentor.yaml --data-root $(DEMO_WORK)/cityscapes \
		--out $(DEMO_WORK)/segmentor
	$(PY) -m hypood_ros.cli train uem --config config/demo/uem.yaml --data-root $(DEMO_WORK)/cityscapes \
		--init $(DEMO_WORK)/segmentor/model.pt --out $(DEMO_WORK)/uem
	$(PY) -m hypood_ros.apps.model_card --model $(DEMO_WORK)/uem/model.pt --data $(DEMO_WORK) --out models/demo \
		--score normalized_max_logit --roi road --roi-margin 3 --local-contrast 0.15 --target-fpr 0.02 --opening 5 \
		--input-sizes 238x476 252x504 266x532 280x560 294x588 308x616

clean:
	rm -rf $(VENV) build *.egg-info
