# SPDX-License-Identifier: GPL-2.0-only
# Loading espintcp.ko in the tests as modprobe loads an installed one:
# the kernel's ESP modules it stands in for first (its MODULE_SOFTDEP;
# esp6 is optional and absent with ipv6.disable=1), then the module.

espintcp_insmod() {	# KO
	modprobe -q esp4
	modprobe -q esp6 2>/dev/null
	insmod "$1"
}

# Add an IPv4 SA with TCP encapsulation that no traffic uses, to see
# whether the kernel (and the module) accept one; in NETNS if given.
espintcp_add_test_sa() {	# [NETNS]
	ip ${1:+-n "$1"} xfrm state add src 192.0.2.1 dst 192.0.2.2 \
		proto esp spi 0x1000 mode tunnel \
		aead 'rfc4106(gcm(aes))' 0x$(printf '%040d' 1) 128 \
		encap espintcp 4500 4500 0.0.0.0
}

# Attach the ULP to a connected TCP socket over the current network
# namespace's loopback (up); prints "ok" or the errno's name.  Callers
# that switch user or namespace pass it on with declare -f.
espintcp_try_attach() {
	python3 -c '
import errno, socket
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen()
c = socket.create_connection(ls.getsockname()); s, _ = ls.accept()
try:
    c.setsockopt(socket.IPPROTO_TCP, 31, b"espintcp")   # TCP_ULP
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
' 2>&1
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

# The selftests' probe module (selftests/modules/espintcp_test_probe.c),
# which counts what espintcp hands XFRM: loaded if it is not.
probe_load() {
	[ -e /sys/module/espintcp_test_probe ] ||
		insmod "$(dirname "${BASH_SOURCE[0]}")/../../build/$(uname -r)/selftests/modules/espintcp_test_probe.ko"
}

probe_get() {	# NAME
	cat "/sys/module/espintcp_test_probe/parameters/$1"
}

probe_set() {	# NAME VALUE
	echo "$2" > "/sys/module/espintcp_test_probe/parameters/$1"
}
