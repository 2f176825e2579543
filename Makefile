# Two commands do everything on a fresh machine (Debian 12, root):
#   make demo   install, start floe, create a 3-node Swarm cluster, deploy the pinger stack
#   make test   install, run the whole test suite (end-to-end tests with real clusters included)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := curl docker.io docker-registry busybox-static skopeo iproute2 iptables procps python3-venv

.PHONY: install apt venv demo demo-clean test bench lint

install: apt venv

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

venv:
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[test]'

demo: install
	@bash scripts/demo.sh

demo-clean:
	@bash scripts/demo.sh --clean

test: install
	$(VENV)/bin/pytest -ra

bench: install
	$(PY) bench/create_cluster.py

lint:
	$(VENV)/bin/ruff check src tests bench
