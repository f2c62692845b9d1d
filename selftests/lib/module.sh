# SPDX-License-Identifier: GPL-2.0-only
# Loading espintcp.ko in the tests as modprobe loads an installed one:
# the kernel's ESP modules it stands in for first (its MODULE_SOFTDEP;
# esp6 is optional and absent with ipv6.disable=1), then the module.

espintcp_insmod() {	# KO
	modprobe -q esp4
	modprobe -q esp6 2>/dev/null
	insmod "$1"
}

# Unload the module.  Closed sockets and flushed SAs are freed a moment
# later (TCP teardown, the xfrm garbage collector), and each holds the
# module: try for 10 s.
espintcp_rmmod() {
	local i

	for i in $(seq 100); do
		rmmod espintcp 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
