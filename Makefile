# Two commands do everything on a fresh machine (Debian 12, root):
#   make demo   install, start floe, create a 3-node Swarm cluster, deploy the pinger stack
#   make test   install, run the whole test suite (end-to-end tests with real clusters included)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES = curl docker.io docker-registry busybox-static skopeo iproute2 iptables procps python3-venv postgresql e2fsprogs glusterfs-server \
  $(SLURM_APT_PACKAGES) $(MONITORING_APT_PACKAGES) $(WEB_TEST_APT_PACKAGES) $(LOGS_APT_PACKAGES)
# Every node's journal (dockerd's journald log driver, floe cluster logs --daemon journald):
# systemd-journald runs in each node and journalctl reads it; systemd need not be pid 1.
LOGS_APT_PACKAGES := systemd
# The dashboard's browser tests (tests/web) and screenshots drive Debian's headless Chromium with Selenium.
WEB_TEST_APT_PACKAGES := chromium chromium-driver
# floe's monitoring stack (floe monitoring up, FLOE_MONITORING=1): Prometheus (with promtool) and
# Alertmanager (with amtool), run as host daemons of a FLOE_HOME.
MONITORING_APT_PACKAGES := prometheus prometheus-alertmanager
# Slurm clusters (coe: slurm): the daemons floe runs in nodes, the stock clients on the host, munge,
# slurmdbd with MariaDB for accounting, OpenMPI (mpicc builds the tests' MPI program) and PMIx.
SLURM_APT_PACKAGES := slurmctld slurmd slurm-client munge slurmdbd mariadb-server openmpi-bin libopenmpi-dev libpmix2
# Only for the benchmarks (make bench-scale): wrk loads the API.
BENCH_APT_PACKAGES := wrk

.PHONY: install apt venv ansible-venv demo demo-clean test bench bench-scale lint

install: apt venv

apt:
	@missing=""; for p in $(APT_PACKAGES) $(EXTRA_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

venv:
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[test,postgres]'
	@$(MAKE) --no-print-directory ansible-venv

# Ansible with its openstack.cloud collection, in a venv of its own as Ansible users keep it:
# the collection the `ansible` package ships (2.5) needs an openstacksdk older than 4.15, and
# the openstack CLI in .venv needs 4.21 or newer. tests/api/test_ansible.py drives it.
ANSIBLE_VENV ?= .venv-ansible
ansible-venv:
	@test -x $(ANSIBLE_VENV)/bin/ansible-playbook || { python3 -m venv $(ANSIBLE_VENV) && \
	  $(ANSIBLE_VENV)/bin/pip install -q --upgrade pip >/dev/null && \
	  $(ANSIBLE_VENV)/bin/pip install -q 'ansible>=11,<13' 'openstacksdk>=4.6,<4.15'; }

demo: install
	@bash scripts/demo.sh

demo-clean:
	@bash scripts/demo.sh --clean

# Every test that supports it runs on SQLite and on a throwaway PostgreSQL server as well.
test: install
	$(VENV)/bin/lint-imports --no-cache
	bash scripts/test-postgres.sh $(VENV)/bin/pytest -ra

bench: install
	$(PY) bench/create_cluster.py

# Control plane (simulated provider) and API load, each on SQLite and on PostgreSQL.
bench-scale: install
	@$(MAKE) --no-print-directory apt EXTRA_APT_PACKAGES="$(BENCH_APT_PACKAGES)"
	$(PY) bench/control_plane.py
	bash scripts/test-postgres.sh sh -c '$(PY) bench/control_plane.py --database-url "$$FLOE_TEST_POSTGRES_URL"'
	$(PY) bench/api_load.py
	bash scripts/test-postgres.sh sh -c '$(PY) bench/api_load.py --database-url "$$FLOE_TEST_POSTGRES_URL"'

lint:
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports --no-cache
