# SPDX-License-Identifier: GPL-2.0-only
#
# espintcp: ESP-in-TCP (RFC 8229/9329) for Debian kernels built without
# CONFIG_INET_ESPINTCP.
#
#   make              build espintcp.ko for the Debian 6.1 kernel, and tools/
#   make check        install what is needed, run every test in the VM,
#                     on each kernel of KVERS (default: 6.1 and trixie)
#   make demo         install what is needed, show ESP-in-TCP in the VM
#   make parity       the ULP tests against upstream espintcp (builds a
#                     kernel from linux-source-6.1 once, ~12 minutes)
#   make fuzz         the fuzzer in the VM for SECONDS (default 60), with
#                     SEED to replay a run; DEBUG=1 (DEBUG=6.12) under
#                     the 6.1 (6.12) debug kernel
#   make check-debug  every test under KASAN, lockdep, kmemleak etc., on
#                     debug kernels built once each from Debian's
#                     linux-source (DEBUG_LINES: 6.1 6.12; about 30
#                     minutes each); run it for every change to module/
#   make bench        the benchmark on each kernel of KVERS: results in
#                     bench/results/ (not part of make check)
#   make bench-profile  where ESP-in-TCP and ESP-in-UDP spend the guest's
#                     time (perf), on KVER
#   make bench-compare BASE=REV  our module at git revision REV against
#                     the working tree's, side by side in one boot
#   make bench-parity the benchmark against upstream espintcp, on two
#                     kernels from linux-source-6.1 that differ only in
#                     espintcp (built once, ~12 minutes each)
#   make deb          build the Debian package espintcp-dkms (in build/deb/)
#   make deps         install Debian packages, unpack the VM kernels,
#                     make the Debian 13 root
#   make install      modules_install + depmod for KVER; the tools, their
#                     man pages and unit in PREFIX (/usr/local)
#   make sparse       build with sparse (C=2)
#
# KVER selects the kernel: an ABI name (6.1.0-56-amd64) or a line (6.1,
# bpo for bookworm-backports' 6.12, trixie for Debian 13's 6.12); the
# default is the ABI that linux-headers-amd64 points to, never the
# host's uname -r.  KDIR overrides its build tree.  Each kernel builds in
# build/KVER/ (a tree of links to the sources), and the last module built
# is copied to ./espintcp.ko.  KVERS lists the kernels 'make check' and
# 'make deps' cover.

ifeq ($(origin KVER),undefined)
ifdef KDIR
KVER := $(shell cat $(KDIR)/include/config/kernel.release 2>/dev/null)
else
KVER := $(shell selftests/vm/kver 2>/dev/null)
endif
USER_KVER :=
else
USER_KVER := $(KVER)
override KVER := $(shell selftests/vm/kver $(USER_KVER) 2>/dev/null)
endif
KVERS ?= 6.1 trixie
B := $(CURDIR)/build/$(KVER)
export ESPINTCP_CACHE ?= $(HOME)/.cache/espintcp

MAKEFLAGS += --no-print-directory
ifdef KDIR
KMAKE = $(MAKE) -C $(KDIR) M=$(1)
else
KMAKE = selftests/vm/kmake $(KVER) $(1)
endif

.PHONY: all modules test-modules selftests tools sparse install clean deps \
	deb deb-build \
	check check-run check-debug check-debug-run fuzz fuzz-run demo \
	demo-run parity bench bench-run bench-parity bench-parity-run \
	bench-profile bench-profile-run bench-progs bench-compare \
	bench-compare-run \
	parity-run kdir tree

all: modules tools

kdir:
	@test -n "$(KVER)" || { echo "no kernel ABI for '$(USER_KVER)': run 'make deps'" >&2; exit 1; }

# The build folder of a kernel: links to the sources, so that every
# kernel keeps its own objects.
tree: kdir
	@mkdir -p $(B)/module $(B)/selftests/modules
	@ln -sfr Kbuild VERSION -t $(B)
	@ln -sfrn include $(B)/include
	@ln -sfr module/*.[ch] -t $(B)/module
	@ln -sfr selftests/modules/Kbuild selftests/modules/*.c \
		-t $(B)/selftests/modules

modules: tree
	$(call KMAKE,$(B)) modules
	@cp $(B)/espintcp.ko espintcp.ko

test-modules: tree
	$(call KMAKE,$(B)/selftests/modules) modules

tools:
	$(MAKE) -C tools

selftests:
	$(MAKE) -C selftests

sparse: tree
	$(call KMAKE,$(B)) C=2 modules

install: modules tools
	$(call KMAKE,$(B)) modules_install
	depmod -a $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(KVER)
	$(MAKE) -C tools install

clean:
	rm -rf build espintcp.ko
	$(MAKE) -C selftests clean
	$(MAKE) -C tools clean
	$(MAKE) -C bench clean

deps:
	selftests/vm/deps $(or $(USER_KVER),$(KVERS))

# The DKMS package, built with dpkg-buildpackage from a copy of what it
# ships (dpkg-buildpackage writes its results beside the source folder);
# 'make deb' then runs lintian (make check's dkms_package.sh runs it as a
# test).
VERSION := $(file <VERSION)
DEB := build/deb/espintcp-dkms_$(VERSION)_all.deb

deb:
	selftests/vm/deps deb
	$(MAKE) deb-build
	lintian --fail-on error --info $(DEB)
	@echo "$(DEB)"

deb-build:
	rm -rf build/deb
	mkdir -p build/deb/espintcp-$(VERSION)
	cp -r COPYING Kbuild VERSION debian include module \
		build/deb/espintcp-$(VERSION)/
	cd build/deb/espintcp-$(VERSION) && dpkg-buildpackage -us -uc -b

# The two entry points run 'deps' first, then start over so that KVER is
# resolved from what 'deps' installed.
check:
	selftests/vm/deps $(KVERS) dkms
	$(MAKE) check-run

# The package, then every kernel of KVERS gets its modules, then one VM
# boot each.
check-run: selftests tools deb-build
	@for k in $(KVERS); do \
		$(MAKE) KVER=$$k modules test-modules || exit 1; \
	done
	KVERS="$(KVERS)" ESPINTCP_DEB=$(DEB) selftests/check

parity:
	selftests/vm/deps 6.1
	$(MAKE) parity-run

# The debug kernels (DEBUG_LINES: 6.1, and 6.12 from Debian 13's
# source) are built once each (cached); the module and the test modules
# are built against each tree, then one VM boot each runs everything.
DEBUG_LINES ?= 6.1 6.12
debug_deps = 6.1 $(if $(filter 6.12,$(1)),trixie)

check-debug:
	selftests/vm/deps $(call debug_deps,$(DEBUG_LINES))
	@rc=0; for l in $(DEBUG_LINES); do \
		selftests/vm/build-kernel debug $$l >/dev/null || exit 1; \
		$(MAKE) check-debug-run DEBUG_LINE=$$l \
			KDIR=$$(selftests/vm/build-kernel debug $$l --kdir) || rc=1; \
	done; exit $$rc

DEBUG_LINE ?= 6.1
check-debug-run: selftests tools modules test-modules
	selftests/check --debug $(DEBUG_LINE)

# DEBUG=1 (or DEBUG=6.12): under the debug kernel of that line.
SECONDS ?= 60
fuzz_line = $(if $(filter 6.12,$(DEBUG)),6.12,6.1)
ifdef DEBUG
fuzz:
	selftests/vm/deps $(call debug_deps,$(fuzz_line))
	selftests/vm/build-kernel debug $(fuzz_line) >/dev/null
	$(MAKE) fuzz-run KDIR=$$(selftests/vm/build-kernel debug $(fuzz_line) --kdir)
else
fuzz:
	selftests/vm/deps $(or $(USER_KVER),6.1)
	$(MAKE) fuzz-run
endif

fuzz-run: selftests modules
	ESPINTCP_FUZZ_SECONDS=$(SECONDS) ESPINTCP_FUZZ_SEED=$(SEED) \
		selftests/vm/run -t $$(($(SECONDS) * 2 + 900)) \
		$(if $(DEBUG),--bzimage $$(selftests/vm/build-kernel debug $(fuzz_line)) -m 3G,-k $(KVER)) \
		-- selftests/run_tests fuzz.sh

parity-run: selftests
	selftests/check --parity

# The benchmark: bench/bench.sh in one VM boot per kernel, its records
# (the console lines "@bench JSON") kept in build/bench/, then
# bench/report.py: a table, bench/results/DATE.json and DATE.png.
BENCH_OUT := bench/results/$(shell date -u +%Y%m%d-%H%M%S)
bench_vm = { selftests/vm/run $(1) -t 14400 -- bench/bench.sh; \
		echo "@rc $$?"; } | tr -d '\r' | tee build/bench/log-$(2) | \
	grep -v '^@'; \
	sed -n 's/^@bench //p' build/bench/log-$(2) > build/bench/raw-$(2).jsonl; \
	grep -qx '@rc 0' build/bench/log-$(2) || \
		{ echo "bench: the run on $(2) failed (see build/bench/log-$(2))"; \
		  failed=1; }

bench:
	selftests/vm/deps $(KVERS) bench
	$(MAKE) bench-run

# The bench's own programs (bench/tcp_rr).
bench-progs:
	$(MAKE) -C bench

bench-run: tools bench-progs
	@for k in $(KVERS); do \
		$(MAKE) KVER=$$k modules || exit 1; \
	done
	@mkdir -p build/bench bench/results
	@rm -f build/bench/raw-*.jsonl
	@failed=0; for k in $(KVERS); do \
		$(call bench_vm,-k $$k,$$k); \
	done; \
	bench/report.py $(BENCH_OUT).json build/bench/raw-*.jsonl && \
	[ $$failed = 0 ]

# Where the time goes: perf in the guest during a 1-stream transfer, for
# ESP-in-UDP and ESP-in-TCP (BENCH_MODES) on KVER's kernel; bench/profile.py
# prints the cost per megabyte of each category of symbols and writes
# bench/results/profile-DATE.json.
bench-profile:
	selftests/vm/deps $(or $(USER_KVER),6.1) bench
	$(MAKE) bench-profile-run

bench-profile-run: tools modules bench-progs
	@mkdir -p build/bench bench/results
	@failed=0; export BENCH_PROFILE=1 \
		BENCH_MODES="$(or $(BENCH_MODES),udp tcp)"; \
	$(call bench_vm,-k $(KVER),profile); \
	bench/profile.py $(dir $(BENCH_OUT))profile-$(notdir $(BENCH_OUT)).json \
		build/bench/raw-profile.jsonl && \
	[ $$failed = 0 ]

# Upstream's espintcp built in (the parity kernel) against our module on
# a kernel from the same source and configuration without it.
# make bench-compare BASE=REV: our module as of git revision REV (base)
# and as in the working tree (head), one after the other for every
# configuration in one boot per kernel of KVERS; the report adds head /
# base.  BENCH_MODES narrows it (udp tcp: ESP-in-UDP as the control).
bench-compare:
	selftests/vm/deps $(KVERS) bench
	$(MAKE) bench-compare-run

bench-compare-run: tools bench-progs
	@test -n "$(BASE)" || { echo "usage: make bench-compare BASE=REV" >&2; exit 2; }
	@git rev-parse -q --verify "$(BASE)^{commit}" >/dev/null || \
		{ echo "bench-compare: no revision $(BASE)" >&2; exit 2; }
	@mkdir -p build/bench bench/results
	@rm -f build/bench/raw-*.jsonl
	@for k in $(KVERS); do \
		$(MAKE) KVER=$$k modules || exit 1; \
		b=build/bench/base-$$k; rm -rf $$b; mkdir -p $$b; \
		git archive "$(BASE)" $$(git ls-tree --name-only "$(BASE)" \
			Kbuild VERSION module include) | tar -x -C $$b && \
		selftests/vm/kmake $$(selftests/vm/kver $$k) $$b modules \
			>$$b.log 2>&1 || { cat $$b.log; exit 1; }; \
	done
	@failed=0; for k in $(KVERS); do \
		r=$$(selftests/vm/kver $$k); \
		export BENCH_VARIANTS="base=build/bench/base-$$k/espintcp.ko head=build/$$r/espintcp.ko"; \
		$(call bench_vm,-k $$k,$$k); \
	done; \
	BENCH_BASE=$$(git rev-parse --short "$(BASE)") \
		bench/report.py $(BENCH_OUT).json build/bench/raw-*.jsonl && \
	[ $$failed = 0 ]

bench-parity:
	selftests/vm/deps 6.1 bench
	selftests/vm/build-kernel parity >/dev/null
	selftests/vm/build-kernel bench >/dev/null
	$(MAKE) bench-parity-run KDIR=$$(selftests/vm/build-kernel bench --kdir)

bench-parity-run: tools modules bench-progs
	@mkdir -p build/bench bench/results
	@rm -f build/bench/raw-*.jsonl
	@up=$$(selftests/vm/build-kernel parity) && \
	ours=$$(selftests/vm/build-kernel bench) || exit 1; failed=0; \
	$(call bench_vm,--bzimage $$up,upstream); \
	$(call bench_vm,--bzimage $$ours,ours); \
	bench/report.py $(BENCH_OUT).json build/bench/raw-*.jsonl && \
	[ $$failed = 0 ]

demo:
	selftests/vm/deps $(or $(USER_KVER),6.1)
	$(MAKE) demo-run

demo-run: modules tools
	selftests/vm/run -k $(KVER) -- tools/demo.sh
