# Two entry points for a fresh machine: `make demo` (install + main job) and `make test` (install + tests).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test benchmarks

$(VENV)/.installed-run: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV) run
	touch $@

$(VENV)/.installed-test: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV) test
	touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	HF_HUB_OFFLINE=1 $(PY) -m catalyst_nb run --n-ctx 8 --compare coop --overwrite --out runs/demo

test: $(VENV)/.installed-test
	HF_HUB_OFFLINE=1 CATALYST_REQUIRE_LLM=1 CATALYST_REQUIRE_BROWSER=1 CATALYST_NB_SMOKE=1 \
		$(PY) -m pytest -q tests --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg notebooks

benchmarks: $(VENV)/.installed-test
	HF_HUB_OFFLINE=1 $(PY) benchmarks/speed.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/embedded_model.py
