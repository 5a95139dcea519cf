# capbox: every entry point.  `make test` and `make run` work on a fresh
# Debian 12 machine: they install the Debian packages they need, create the
# venv and build the C core; stamps make the second run fast.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

APT_BUILD := gcc libc6-dev libpcap-dev libssl-dev pkg-config
APT_TEST := tshark tcpdump tcpreplay iproute2 minisign nfdump socat tmux rsyslog rsyslog-openssl
APT_BENCH := softflowd nfdump time
# the attack lab (tests/lab): real attack tools, and the LAN's own servers and clients
APT_LAB := dsniff ettercap-text-only bettercap thc-ipv6 dnsmasq-base keepalived isc-dhcp-client dnsutils curl \
	iputils-ping net-tools openssl
CORE := $(wildcard hwdrivers/src/*.c hwdrivers/include/*.h hwdrivers/cdef/*.h) hwdrivers/build_ffi.py
PYTEST_ARGS ?=

.PHONY: all build run test bench soak image image-test clean distclean help

all: build

help:
	@echo "make run     start the agent on its embedded demo capture"
	@echo "make test    install what is missing, build, run the test suite"
	@echo "make bench   benchmark against tcpdump and softflowd (bench/RESULTS.md)"
	@echo "make soak    30 minutes at 50k packets/s + 50 REST clients + 20 event streams: RSS and fds (SOAK_MINUTES=)"
	@echo "make build   build the C core in place"
	@echo "make image   the disk image (build/image/out: disk.img, .zst, .bmap, SHA256SUMS, lock, bundle)"
	@echo "make image-test  boot it under qemu: health, console, capture, signed update, fallback"
	@echo "make clean   remove build output (distclean: the venv too)"

# apt packages, installed only when missing ------------------------------------
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

$(STAMPS)/apt-build:
	@mkdir -p $(STAMPS)
	$(call apt_install,$(APT_BUILD))
	@touch $@

$(STAMPS)/apt-test: Makefile
	@mkdir -p $(STAMPS)
	$(call apt_install,$(APT_TEST) $(APT_LAB))
	@touch $@

$(STAMPS)/apt-bench:
	@mkdir -p $(STAMPS)
	$(call apt_install,$(APT_BENCH))
	@touch $@

# venv ----------------------------------------------------------------------------
$(STAMPS)/venv: pyproject.toml setup.py | $(STAMPS)/apt-build
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel cffi
	CAPBOX_NO_EXT=1 $(PY) -m pip install -q --no-build-isolation -e '.[test]'
	@touch $@

# the C core, compiled in place by cffi -----------------------------------------
$(STAMPS)/build: $(CORE) $(STAMPS)/venv
	$(PY) hwdrivers/build_ffi.py
	@touch $@

# the code of the dataclasses' methods, compiled once (hwdrivers/dataclasscode.py)
$(STAMPS)/dataclasscode: $(STAMPS)/build $(shell find agent hwdrivers firmware tui -name '*.py')
	$(PY) -c 'from hwdrivers import dataclasscode; print(dataclasscode.write(), "dataclass methods compiled")'
	@touch $@

build: $(STAMPS)/build $(STAMPS)/dataclasscode

run: build
	$(VENV)/bin/capbox run

# mitmproxy for the attack lab, in a venv of its own (its pins are not the agent's)
$(STAMPS)/lab-venv: | $(STAMPS)/apt-build
	@mkdir -p $(STAMPS)
	test -x .venv-lab/bin/python || $(PYTHON) -m venv .venv-lab
	.venv-lab/bin/pip install -q mitmproxy
	@touch $@

test: build $(STAMPS)/apt-test $(STAMPS)/lab-venv
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: build $(STAMPS)/apt-test $(STAMPS)/apt-bench
	bash bench/run.sh

# the soak alone (make bench runs it too, unless SKIP_SOAK=1): SOAK_MINUTES of mixed load
SOAK_MINUTES ?= 30
soak: build
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES) --results bench/RESULTS.md --note "$(SOAK_NOTE)"

# the disk image (docs/IMAGE.md) -------------------------------------------------------
APT_IMAGE := mmdebstrap e2fsprogs dosfstools mtools fdisk binutils systemd-boot-efi squashfs-tools bc zstd \
	bmap-tools qemu-system-x86 qemu-utils ovmf cryptsetup-bin sbsigntool openssl \
	gcc make flex bison libelf-dev libssl-dev lz4 xz-utils
IMAGE_OUT ?= build/image

$(STAMPS)/apt-image: Makefile
	@mkdir -p $(STAMPS)
	$(call apt_install,$(APT_IMAGE))
	@touch $@

image: build $(STAMPS)/apt-image
	$(SUDO) env PY=$(abspath $(PY)) CAPBOX=$(abspath $(VENV)/bin/capbox) IMAGE_OUT=$(abspath $(IMAGE_OUT)) \
	  bash image/build.sh

image-test: image $(STAMPS)/apt-test
	@mkdir -p $(IMAGE_OUT)/test
	$(SUDO) $(PY) -m pytest -m image -p no:cacheprovider --timeout=3600 -v tests/image $(PYTEST_ARGS) 2>&1 \
	  | tee $(IMAGE_OUT)/test/image-test.log; rc=$${PIPESTATUS[0]}; $(PY) -m tests.image.report; exit $$rc

clean:
	rm -rf build/lib* build/temp* build/bdist* build/cffi dist *.egg-info hwdrivers/_hw*.so $(STAMPS)/build
	find . -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .venv-lab $(STAMPS) .pytest_cache .hypothesis

# fuzz: libFuzzer with ASan/UBSan over the packet path (tests/c/fuzz_parse.c) ------
# Seeds: every packet of the shared captures, and IP ones re-framed for each link
# type, in build/fuzz-corpus (it keeps what the fuzzer finds).  A crash or a broken
# counter invariant stops the run and leaves its input in build/fuzz/crash-*.
APT_FUZZ := clang libclang-rt-14-dev
FUZZ_SECONDS ?= 60
FUZZ_PCAPS ?= ../shared/pcaps
FUZZ_CORPUS := build/fuzz-corpus
FUZZ_BIN := build/fuzz/fuzz_parse
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_ARGS ?= -timeout=10 -print_final_stats=1

.PHONY: fuzz

$(STAMPS)/apt-fuzz:
	@mkdir -p $(STAMPS)
	$(call apt_install,$(APT_FUZZ))
	@touch $@

$(FUZZ_BIN): tests/c/fuzz_parse.c $(CORE) | $(STAMPS)/apt-build $(STAMPS)/apt-fuzz
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -Ihwdrivers/include tests/c/fuzz_parse.c hwdrivers/src/*.c -lpcap -lcrypto -o $@

build/fuzz/seeded: tests/c/fuzz_parse.c | $(STAMPS)/apt-build $(STAMPS)/apt-fuzz
	@mkdir -p $(@D) $(FUZZ_CORPUS)
	clang -std=gnu11 -O2 -DFUZZ_SEEDS tests/c/fuzz_parse.c -lpcap -o build/fuzz/fuzz-seeds
	@pcaps="$(wildcard $(FUZZ_PCAPS)/*.pcap* $(FUZZ_PCAPS)/tunnels/*.pcap*)"; \
	if [ -n "$$pcaps" ]; then build/fuzz/fuzz-seeds $(FUZZ_CORPUS) $$pcaps; \
	else echo "no captures in $(FUZZ_PCAPS): the fuzzer starts from an empty corpus"; fi
	@touch $@

fuzz: $(FUZZ_BIN) build/fuzz/seeded
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/ $(FUZZ_ARGS) $(FUZZ_CORPUS)
