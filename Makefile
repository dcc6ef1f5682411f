# kdlib: the two commands are `make run` (full reproduction) and `make test` (what CI runs).
# Both create .venv and install what they need on first use; a second call reuses it.
# `make help` lists every target.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# -qq: errors only (pip's and setuptools' warnings about the machine's indexes are noise here)
PIP := $(PY) -m pip -qq --disable-pip-version-check
STAMP := $(VENV)/.installed
# The exact tested versions (pyproject.toml declares only ranges): .venv is installed with them.
CONSTRAINTS := constraints.txt
BENCH_STAMP := $(VENV)/.installed-bench
# torcheeg, for benchmarks/bench_vs_torcheeg.py only: 1.1.3 needs numpy<2 and scipy 1.10 (binary
# wheel), so it gets its own git-ignored environment and never enters kdlib's dependencies.
# torch 2.13.0 is the CPU build pip finds here (a bare `torch` pulls a multi-GB CUDA build).
TORCHEEG_VENV := benchmarks/.bench-venv
TORCHEEG_STAMP := $(TORCHEEG_VENV)/.installed
TORCHEEG_PINS := torcheeg==1.1.3 torch==2.13.0 'numpy<2' scipy==1.10.1 'pandas<3' 'psutil>=5.9,<8'
KERNEL := kdlib

# Synthetic DEAP-format data set (kdlib.data.synthetic): one preset at a time in data/synthetic/,
# marked by a stamp file; switching preset regenerates it. SYNTH_ARGS adds --subjects/--trials/--seed.
SYNTH_DIR := data/synthetic
RUN_PRESET ?= default
TEST_PRESET ?= smoke
SYNTH_ARGS ?=

# `make run DATASET=deap` runs on your DEAP copy ($KDLIB_DEAP_DIR) instead of the synthetic set;
# NB_ARGS passes more notebook parameters, e.g. NB_ARGS="-p DATA_DIR /path/to/deap -p SEED 1".
DATASET ?= synthetic
NB_ARGS ?=
# The reproduce run of `make run` (kdlib reproduce): its folder and its size, chosen so that make run
# fits 60 min on 2 cores (benchmarks/results/make_run.md): the full protocol on every subject of the
# default synthetic set with the small (smoke-size) models, 3 seeds, at most 8 epochs, and 8 of the
# 9 methods: late_fusion is left out (it was 17 % of the CPU time; notebook 02 compares it with the
# gated teacher at the kit size). Leaving it out changes no other method's numbers (each method
# starts from its own seed). The kit-size models would take hours: stacking the folds does not speed
# up a CPU. For the full-size models or a real DEAP copy use e.g. REPRO_ARGS="--preset paper --jobs 2"
# (all 32 subjects, all 9 methods; on a GPU: --jobs 1, stacked automatically).
RUN_OUT ?= results/$(DATASET)
REPRO_METHODS := majority,eeg_only,eog_only,teacher,scratch,v1,v2,v3
REPRO_ARGS ?= --folds 5 --preset smoke --epochs 8 --seeds 0,1,2 --methods $(REPRO_METHODS) --jobs 2
RUN_DATA := $(if $(filter synthetic,$(DATASET)),$(SYNTH_DIR)/.preset-$(RUN_PRESET))

# Notebooks executed at once by `make run` and `make test` (kdlib.notebooks --jobs), each in its own
# kernel: the notebooks are independent and train with one torch thread each, so two fill two cores
# and give the same outputs as one at a time.
NB_JOBS ?= 2

NB_SOURCES := $(wildcard notebooks/[0-9][0-9]_*.ipynb)
NB_BUILT := $(patsubst notebooks/%,build/notebooks/%,$(NB_SOURCES))

.PHONY: help venv data run test strip bench lab clean distclean book book-check sweep course

# The course (kdlib.course.editions): student and instructor editions written from notebooks/.
COURSE_OUT ?= build/course

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  make \1\t/' | expand -t 18

venv: $(STAMP)  ## create .venv, install kdlib[dev] and register the 'kdlib' Jupyter kernel

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c $(CONSTRAINTS) --upgrade pip
	$(PIP) install -c $(CONSTRAINTS) -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "kdlib (.venv)"
	touch $@

$(SYNTH_DIR)/.preset-%: $(wildcard kdlib/data/synthetic.py) | $(STAMP)
	rm -rf $(SYNTH_DIR)
	$(PY) -m kdlib synth --out $(SYNTH_DIR) --preset $* --quiet $(SYNTH_ARGS)
	@echo "synthetic data set (preset $*) written to $(SYNTH_DIR)/"
	touch $@

data: $(SYNTH_DIR)/.preset-$(RUN_PRESET)  ## write the synthetic data set (RUN_PRESET=default)

run: $(STAMP) $(RUN_DATA)  ## reproduce run + report in results/, then every notebook in full mode
	$(PY) -m kdlib reproduce --dataset $(DATASET) $(REPRO_ARGS) --out $(RUN_OUT)
	$(PY) -m kdlib.notebooks --full --jobs $(NB_JOBS) -p DATASET $(DATASET) -p RESULTS_DIR $(RUN_OUT) $(NB_ARGS)

# When does distillation help? (notebook 07): the full grid of kdlib.sweep.SWEEP_PRESETS, resumable;
# notebook 07 in full mode reads results/sweep once it is finished (else the recorded sweep).
SWEEP_OUT ?= results/sweep
SWEEP_ARGS ?= --grid full --jobs 2

sweep: $(STAMP)  ## the distillation sweep (7 synthetic data sets x the protocol) + its report in results/sweep
	$(PY) -m kdlib sweep $(SWEEP_ARGS) --out $(SWEEP_OUT)

test: $(STAMP) $(SYNTH_DIR)/.preset-$(TEST_PRESET)  ## unit tests (the course's checks verified among them), smoke notebooks (instructor edition), nbval re-run, nbstripout check
	$(PY) -m pytest tests -m "not notebooks" -p no:cacheprovider -q
	$(PY) -m kdlib course --out $(COURSE_OUT)
	$(PY) -m kdlib.notebooks --smoke --jobs $(NB_JOBS) --src $(COURSE_OUT)/instructor
	@test -n "$(NB_BUILT)" || { echo "make test: no notebooks/NN_*.ipynb to check" >&2; exit 1; }
	$(PY) -m pytest --nbval $(NB_BUILT) --nbval-kernel-name $(KERNEL) \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider -q
	$(VENV)/bin/nbstripout --verify --keep-id notebooks/*.ipynb

course: $(STAMP)  ## the course's student and instructor editions in build/course/ (checks verified)
	$(PY) -m kdlib course --out $(COURSE_OUT) --verify

strip: $(STAMP)  ## remove outputs from notebooks/*.ipynb before committing (keeps tags and cell ids)
	$(VENV)/bin/nbstripout --keep-id notebooks/*.ipynb

$(BENCH_STAMP): $(STAMP)
	$(PIP) install -e '.[dev,bench]'
	touch $@

$(TORCHEEG_STAMP):
	test -x $(TORCHEEG_VENV)/bin/python || $(PYTHON) -m venv $(TORCHEEG_VENV)
	$(TORCHEEG_VENV)/bin/python -m pip -qq --disable-pip-version-check install --only-binary scipy $(TORCHEEG_PINS)
	touch $@

bench: $(BENCH_STAMP) $(TORCHEEG_STAMP)  ## run every benchmarks/*.py (results go to benchmarks/results/)
	@shopt -s nullglob; scripts=(benchmarks/*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "no benchmark scripts in benchmarks/"; exit 0; fi; \
	for script in "$${scripts[@]}"; do echo "== $$script"; $(PY) "$$script"; done

# Wheels of the pure-Python packages benchmarks/gpu_check.sh installs without network on a GPU
# machine that has its own CUDA PyTorch (it adds only what that machine lacks; see the script).
GPU_WHEELS := mne decorator lazy_loader packaging seaborn tqdm joblib tabulate edfio pytest pluggy iniconfig

gpu-wheels: $(STAMP)  ## download the wheels benchmarks/gpu_check.sh installs offline (into benchmarks/wheels/)
	$(PIP) download --only-binary=:all: --no-deps -c constraints.txt --dest benchmarks/wheels $(GPU_WHEELS)

# The course website (book/build.py, book/conf.py) in build/book/html, a plain static folder.
# BOOK_MODE=smoke executes the notebooks in smoke mode for it (a few minutes); BOOK_MODE=full renders
# the full-mode copies that `make run` left in build/notebooks (nothing is re-executed).
BOOK_MODE ?= smoke
BOOK_NOTEBOOKS := $(if $(filter full,$(BOOK_MODE)),build/notebooks,build/book/executed)

book: $(STAMP) $(if $(filter smoke,$(BOOK_MODE)),$(SYNTH_DIR)/.preset-$(TEST_PRESET))  ## the course website in build/book/html (BOOK_MODE=smoke|full)
	@case "$(BOOK_MODE)" in smoke|full) ;; *) echo "make book: BOOK_MODE must be smoke or full" >&2; exit 1;; esac
	$(if $(filter smoke,$(BOOK_MODE)),$(PY) -m kdlib.notebooks --smoke --out $(BOOK_NOTEBOOKS))
	$(PY) book/build.py build --notebooks $(BOOK_NOTEBOOKS) --out build/book

book-check: book  ## make book, then open it in headless Chromium (/usr/bin/chromium) and check its figures
	$(PY) -m pytest tests/test_book.py -p no:cacheprovider -q

lab: $(STAMP) $(SYNTH_DIR)/.preset-$(RUN_PRESET)  ## open JupyterLab on the notebooks
	$(VENV)/bin/jupyter lab notebooks/

clean:  ## remove build/ and caches (keeps data/ and .venv)
	rm -rf build .pytest_cache .hypothesis kdlib.egg-info
	find . \( -path ./$(VENV) -o -path ./.git -o -path ./benchmarks/.bench-venv \) -prune -o \
	    -type d \( -name __pycache__ -o -name .ipynb_checkpoints \) -prune -exec rm -rf {} +

distclean: clean  ## also remove data/ (generated data and caches), .venv and the torcheeg bench environment
	rm -rf data $(VENV) $(TORCHEEG_VENV)
