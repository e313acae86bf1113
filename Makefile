# The two commands of the README: `make all` (run the workflow) and `make test`.
VENV := .venv
STAMP := $(VENV)/.setup-stamp
SNAKEMAKE := $(VENV)/bin/snakemake
CORES ?= $(shell nproc)

.PHONY: all setup test test-slurm lint clean config-docs

all: $(STAMP)
	$(SNAKEMAKE) --cores $(CORES) all

setup: $(STAMP)

$(STAMP): envs/requirements.txt envs/requirements-nodeps.txt envs/petsc.txt envs/apt.txt envs/setup.sh pyproject.toml
	envs/setup.sh
	touch $@

test: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slurm" -q

test-slurm: $(STAMP)
	$(VENV)/bin/python -m pytest -m slurm -q -rs

lint: $(STAMP)
	$(SNAKEMAKE) --lint
	$(SNAKEMAKE) -n all --quiet
	$(SNAKEMAKE) -n all --quiet --configfile config/paper.yaml

clean:
	rm -rf results .snakemake

config-docs: $(STAMP)
	$(VENV)/bin/python -m fpscore.config_docs .
