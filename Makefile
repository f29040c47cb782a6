# Two entry points that work on a fresh Debian 12 machine as root: `make bench` and `make test`.
# Both install what they need first, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SCENARIO ?= scenarios/smoke.yaml
DEB_PACKAGES := iperf3 sockperf nftables iptables iproute2 util-linux procps socat slirp4netns passt python3-venv \
  haproxy conntrack dnsmasq-base bind9-dnsutils
# The QEMU guest (issue 5): QEMU with SeaBIOS and iPXE ROMs, Debian's kernel for the guest, busybox-static and
# cpio for its initramfs, gcc and libnghttp2-dev to build the guest tools (vmnb-h2 links nghttp2 statically).
# Without recommends (the kernel's would pull firmware and grub).
VM_PACKAGES := qemu-system-x86 seabios ipxe-qemu linux-image-amd64 busybox-static cpio gcc libc6-dev libnghttp2-dev make \
  xz-utils
# The docker runtime (issue 14): Debian's Docker engine; the harness starts its own dockerd (`make docker-up`),
# never Debian's service (the policy-rc.d below keeps the package from starting it).
DOCKER_PACKAGES := docker.io
# The tests' reader of report.html (tests/test_browser.py, `vmnetbench report --screenshot`): Debian's Chromium,
# run headless.
TEST_PACKAGES := chromium openssl
PYTEST_ARGS ?=

.PHONY: deps deps-debian deps-test deps-python deps-current bench test lint clean-beds report gate gate-baseline docker-up docker-down

deps: deps-debian deps-python deps-current

# Today's passt (Debian 13's, built) and QEMU (bookworm-backports' 10, unpacked) in /var/cache/vmnetbench, beside
# Debian 12's; from Debian's archive only, pinned by version and hash (harness/tools/debian.py).
deps-current: deps-python deps-debian
	$(BIN)/vmnetbench fetch-tools

# Installs only what is missing, so a second call costs one dpkg query.
deps-debian:
	@$(call install_missing,$(DEB_PACKAGES),)
	@$(call install_missing,$(VM_PACKAGES),--no-install-recommends)
	@$(call install_missing,$(DOCKER_PACKAGES),--no-install-recommends)

deps-test:
	@$(call install_missing,$(TEST_PACKAGES),--no-install-recommends)

# $(1): packages, $(2): extra apt-get options; installs only those not installed yet. A policy-rc.d that
# refuses every start keeps packages with a daemon (haproxy) from starting Debian's default service: the
# harness runs its own instances, and nothing else may listen or add rules on this machine.
define install_missing
missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
if [ -n "$$missing" ]; then \
  echo "installing Debian packages: $$missing"; \
  own_policy=0; [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; own_policy=1; }; \
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) $$missing >/dev/null; status=$$?; \
  [ $$own_policy = 0 ] || rm -f /usr/sbin/policy-rc.d; \
  exit $$status; \
fi
endef

deps-python: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

bench: deps
	$(BIN)/vmnetbench run $(SCENARIO)

# The tests marked `docker` need an engine: started here if none answers, and stopped afterwards only if this
# target started it, whatever pytest's outcome. Two passes (tests/conftest.py): two xdist workers, then the tests
# marked `alone` by themselves (exit 5 of a pass: PYTEST_ARGS selected none of its tests).
test: deps deps-test
	$(BIN)/ruff check harness strategies tests benchmarks
	$(BIN)/vmnetbench engine up --started-by make-test
	status=0; $(BIN)/python -m pytest -q --phase parallel -n 2 --dist loadgroup --durations=30 $(PYTEST_ARGS) || { s=$$?; [ $$s = 5 ] || status=$$s; }; \
	  $(BIN)/python -m pytest -q --phase alone --durations=10 $(PYTEST_ARGS) || { s=$$?; [ $$s = 5 ] || status=$$s; }; \
	  $(BIN)/vmnetbench engine down --if-started-by make-test; exit $$status

# The project's own Docker engine for the docker runtime (`vmnetbench run ... --runtime docker`).
docker-up: deps
	$(BIN)/vmnetbench engine up

docker-down: deps-python
	$(BIN)/vmnetbench engine down

lint: deps-python
	$(BIN)/ruff check harness strategies tests benchmarks
	$(BIN)/ruff format --check harness strategies tests

clean-beds: deps-python
	$(BIN)/vmnetbench clean

# The latest run's report: report.md, report.html and figures/ inside results/<run id>/.
report: deps-python
	$(BIN)/vmnetbench report

# The regression gate, side by side (issue 41): this tree against GATE_BASE (the merge base with origin/main, or
# the previous commit on main itself), both measured in the same 30 blocks of scenarios/gate-side-by-side.yaml
# (about 7 minutes): masquerade's and nat-proxy's throughput both ways, each row's own value paired per block
# (the sitting's shift cancels), exact one-sided signed-rank test, Holm over the 4 rows.
# Exit 1 if something regressed; inconclusive verdicts are listed, not failed. The stored-baseline gate stays
# for when no base revision is at hand: `.venv/bin/vmnetbench gate` (against benchmarks/gate-baseline.json,
# `make gate-baseline` adds a sitting; from 2 sittings their shift is in the error); A/B of two variants in one
# run, paired per block as the side-by-side gate: `.venv/bin/vmnetbench gate --ab A B`.
GATE_BASE ?= $(shell base=$$(git merge-base HEAD origin/main 2>/dev/null);   if [ -z "$$base" ] || [ "$$base" = "$$(git rev-parse HEAD)" ]; then git rev-parse HEAD~1; else echo $$base; fi)
gate: deps
	$(BIN)/vmnetbench gate --against $(GATE_BASE)

gate-baseline: deps
	$(BIN)/vmnetbench gate --save-baseline
