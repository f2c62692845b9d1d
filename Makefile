# SPDX-License-Identifier: GPL-2.0-only
#
# espintcp: ESP-in-TCP (RFC 8229/9329) for Debian kernels built without
# CONFIG_INET_ESPINTCP.
#
#   make              build espintcp.ko for the Debian 6.1 kernel
#   make check        install what is needed, run every test in the VM
#   make demo         install what is needed, show ESP-in-TCP in the VM
#   make parity       the ULP tests against upstream espintcp (builds a
#                     kernel from linux-source-6.1 once, ~12 minutes)
#   make deps         install Debian packages, unpack the VM kernel
#   make install      modules_install + depmod for KVER
#   make sparse       build with sparse (C=2)
#
# KVER selects the kernel (default: the ABI that linux-headers-amd64
# points to, never the host's uname -r); KDIR overrides its build tree.

ifeq ($(origin KVER),undefined)
KVER := $(shell selftests/vm/kver 2>/dev/null)
USER_KVER :=
else
USER_KVER := $(KVER)
endif
KDIR ?= /lib/modules/$(KVER)/build
export ESPINTCP_CACHE ?= $(HOME)/.cache/espintcp

MAKEFLAGS += --no-print-directory
KMAKE = $(MAKE) -C $(KDIR)

.PHONY: all modules test-modules selftests tools sparse install clean deps \
	check check-run demo demo-run parity parity-run kdir

all: modules

kdir:
	@test -n "$(KVER)" || { echo "no kernel ABI: run 'make deps'" >&2; exit 1; }
	@test -d "$(KDIR)" || { echo "$(KDIR) missing: run 'make deps'" >&2; exit 1; }

modules: kdir
	$(KMAKE) M=$(CURDIR) modules

test-modules: kdir
	$(KMAKE) M=$(CURDIR)/selftests/modules modules

tools:
	$(MAKE) -C tools

selftests:
	$(MAKE) -C selftests

sparse: kdir
	$(KMAKE) M=$(CURDIR) C=2 modules

install: modules
	$(KMAKE) M=$(CURDIR) modules_install
	depmod -a $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(KVER)

clean:
	-$(KMAKE) M=$(CURDIR) clean
	-$(KMAKE) M=$(CURDIR)/selftests/modules clean
	$(MAKE) -C selftests clean

deps:
	selftests/vm/deps $(USER_KVER)

# The two entry points run 'deps' first, then start over so that KVER is
# resolved from what 'deps' installed.
check: deps
	$(MAKE) check-run

check-run: modules test-modules selftests tools
	KVER=$(KVER) selftests/check

parity: deps
	$(MAKE) parity-run

parity-run: selftests
	selftests/check --parity

demo: deps
	$(MAKE) demo-run

demo-run: modules tools
	selftests/vm/run -k $(KVER) -- tools/demo.sh
