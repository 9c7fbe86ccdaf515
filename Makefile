# pre-nixos baseline: one entry point for building, checking and proving the collection.
# `make test` works on a fresh Debian 12 machine: it installs what it needs itself.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath .)
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BUILD := $(ROOT)/build
export ANSIBLE_COLLECTIONS_PATH := $(ROOT)/collections
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
SANITY_DIR := $(BUILD)/sanity/ansible_collections/prenixos/baseline
SANITY_HOME := $(BUILD)/sanity-home
APT_PACKAGES := python3-venv nix-bin qemu-system-x86 qemu-utils ovmf mmdebstrap squashfs-tools xorriso mtools \
	grub-pc-bin dosfstools openssh-client zstd cpio

.PHONY: help deps venv lint ruff ansible-lint sanity unit molecule test test-all iso iso-options demo bench build clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

deps: ## Install the Debian packages the tests and the image build need (root)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

venv: $(VENV)/.installed ## Create .venv from the pinned requirements

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	# The venv's tools find each other without it on PATH (molecule runs ansible-config, ansible-playbook).
	echo 'import os, sys; d = os.path.dirname(sys.executable); p = os.environ.get("PATH", ""); d in p.split(os.pathsep) or os.environ.update(PATH=d + os.pathsep + p)' \
	  > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/prenixos-venv-path.pth"
	touch $@

lint: ruff ansible-lint ## ruff and ansible-lint (production profile, offline)

ruff: venv
	$(BIN)/ruff check .

ansible-lint: venv
	$(BIN)/ansible-lint --offline

sanity: venv ## ansible-test sanity, offline, on a copy of the tracked tree
	rm -rf $(SANITY_DIR) && mkdir -p $(SANITY_DIR)
	git ls-files -co --exclude-standard | grep -v '^collections/' | while read -r f; do \
	  [ -e "$$f" ] && cp --parents -P "$$f" $(SANITY_DIR)/; done
	cd $(SANITY_DIR) && git init -q && git add -A
	# ansible-test 2.19 bootstraps pip 24.2 from a host we cannot reach: seed its cache (~/.ansible/test/cache) with
	# our stand-in, under a HOME in build/ so that the user's own ~/.ansible is left alone
	mkdir -p $(SANITY_HOME)/.ansible/test/cache && cp tools/get_pip_offline.py $(SANITY_HOME)/.ansible/test/cache/get_pip_24_2.py
	cd $(SANITY_DIR) && HOME=$(SANITY_HOME) $(BIN)/ansible-test sanity --venv --requirements --python 3.11 --color no

unit: venv ## pytest unit tests (hermetic: fake sysfs, fake runner)
	$(BIN)/pytest -q -p no:cacheprovider -n auto tests/unit iso/tests

molecule: venv ## Boot the ISO in QEMU and run every Molecule scenario
	bash molecule/run.sh

build: venv ## Build the collection tarball into build/
	mkdir -p $(BUILD) && $(BIN)/ansible-galaxy collection build --force --output-path $(BUILD) .

# make test (CI) runs CORE_SCENARIOS, make test-all every scenario. The whole matrix does not fit CI's budget
# with room to spare (CI's last full run: 2,559 s of 2,700), so the core set is the machines that together
# boot the default image's path (default: CD, GRUB, UEFI) and run every phase of first boot, over SSH too
# (fleet), choose among NICs (threenics), refuse data (olddisks), build an edited plan (edited) and keep
# every storage promise under real faults (olddisks, resume: power cuts, a pulled disk). nolink (no link at
# boot) runs in make test-all, which is run on the final code before an issue that changes the image, the
# roles or the scenarios is resolved.
STAGES := deps venv lint sanity unit build iso iso-options
SCENARIOS := $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml))
CORE_SCENARIOS := $(filter default fleet olddisks threenics edited resume,$(SCENARIOS))

test: ## What CI runs: lint, sanity, unit, build, ISO, the core scenarios; each stage timed (build/test-times.json)
	python3 tools/test_clock.py $(STAGES) -- $(CORE_SCENARIOS)

test-all: ## The same with every scenario
	python3 tools/test_clock.py $(STAGES) -- $(SCENARIOS)

iso: deps venv ## Build build/pre-nixos.iso (SSH_KEY=path.pub to bake in your key)
	bash iso/build.sh

iso-options: deps venv ## Build an image with CONSOLE="ttyS1,57600" AUTOLOGIN=0 (build/options/) and check it has those settings
	CONSOLE="ttyS1,57600" AUTOLOGIN=0 BUILD_DIR=$(BUILD)/options CACHE_DIR=$(BUILD)/cache \
		SSH_KEY=$(BUILD)/id_ed25519.pub bash iso/build.sh
	$(BIN)/pytest -q -p no:cacheprovider tests/image --iso $(BUILD)/options/pre-nixos.iso

demo: iso ## Boot the ISO in QEMU with the default machine and stream its console
	bash iso/demo.sh

bench: iso ## Print timing figures: planner, first boot of the demo machine, the plain-script floor (2 VM boots)
	$(BIN)/python tests/bench/bench_vm.py $(if $(BASELINE),--baseline $(BASELINE))

clean: ## Remove build outputs (keeps .venv)
	rm -rf $(BUILD)
