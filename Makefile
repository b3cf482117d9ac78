# The two set-up commands of the README, each complete on a fresh machine:
#   make demo   the main job, live: stack, simulated cluster, producer, three sinks (Ctrl-C stops)
#   make test   ruff, mypy, the import-layer contract and the whole test suite
# Both make the virtual environment, install kafkube, fetch or build the services
# (cached in ~/.cache/kafkube, minutes the first time, seconds after) and run.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
DEMO_ARGS ?=
BENCH_ARGS ?=

.PHONY: demo test unit bench check services test-services install container-tools clean-stack

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "kafkube needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The editable install puts the repo root on the path: kafkube/ there is the import tree (the
# entry points and a link to each package's folder), which mypy, import-linter, pytest and the
# processes the tests start all see, a new module included, without installing again.
install: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'

services: install
	$(BIN)/kafkube stack fetch

# The tests' services, and what they build besides (the node's binaries, helm), all before the
# first test: a build beside a running test would take its CPU (and its deadlines).
test-services: install
	$(BIN)/kafkube stack fetch --node --helm --nessie --keycloak

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p kafkube
	$(BIN)/lint-imports

# The image test builds the Dockerfile and runs it with Debian's daemonless podman (no Docker
# engine here), on a base that mmdebstrap makes from Debian's packages (no registry here); the
# node's test runs it in Debian's containerd, with its CNI plugins and socat (compose/node.py);
# the stack's PostgreSQL (an Iceberg SQL catalog's database) is Debian's server.
CONTAINER_PACKAGES := podman mmdebstrap runc containerd containernetworking-plugins socat postgresql
container-tools:
	@(for tool in podman mmdebstrap runc containerd socat; do command -v $$tool >/dev/null || exit 1; done) \
	  && [ -x /usr/lib/cni/bridge ] && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
	  || $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(CONTAINER_PACKAGES) \
	  || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	       apt-get install -y -q $(CONTAINER_PACKAGES); }

# Branch coverage of the whole suite, the kafkube processes it starts included; two workers
# (pyproject's addopts), each with its own private stack (tests/conftest.py keeps a module on
# one worker).
test: check test-services container-tools
	$(BIN)/pytest --cov --cov-report=term --durations=15 $(PYTEST_ARGS); \
	status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi; \
	exit $$status

# The pure tier while editing: seconds, no service started.
unit: install
	$(BIN)/pytest -m "not services" $(PYTEST_ARGS)

demo: services
	$(BIN)/kafkube demo $(DEMO_ARGS)
	@echo
	@echo 'The stack keeps running. Point your shell at it:  eval "$$($(BIN)/kafkube stack env)"'
	@echo 'Stop it with:                                      $(BIN)/kafkube stack down'

# The benchmark (about 15 minutes on 2 cores): bench/results/latest.json and latest.png.
bench: services
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

clean-stack:
	-$(BIN)/kafkube stack down
