# SPDX-License-Identifier: GPL-2.0-only
#
# The Debian kernel lines the project builds and tests for, sourced by
# kver, deps, kmake and run.
#
#   line      kernel                where its headers live  VM root
#   bookworm  Debian 12, 6.1        the host (apt-get)       the host's /
#   bpo       bookworm-backports,   unpacked in the cache    the host's /
#             6.12
#   trixie    Debian 13, 6.12       the trixie root          the trixie root
#
# The trixie root is a Debian 13 system made with mmdebstrap in the
# cache: trixie's headers need its compiler and C library, so modules for
# it are built there (chroot), and the VM boots trixie's kernel with that
# root as its root file system, so that the tests use Debian 13's
# iproute2, nftables, python3 and libreswan.

cache=${ESPINTCP_CACHE:-${HOME:-/root}/.cache/espintcp}
trixie_root=$cache/trixie-root

# The line of a kernel ABI name (6.1.0-56-amd64, 6.12.95+deb12-amd64,
# 6.12.117+deb13-amd64).
line_of() {
	case $1 in
	*+deb13-*)	echo trixie ;;
	*+deb12-*)	echo bpo ;;
	*)		echo bookworm ;;
	esac
}

# Canonical line name for the names users may give.
line_name() {
	case $1 in
	6.1|bookworm|12)			echo bookworm ;;
	bpo|bookworm-backports|6.12-bpo)	echo bpo ;;
	trixie|13|6.12)				echo trixie ;;
	*)					return 1 ;;
	esac
}

# The Debian archive this host's apt uses for a suite (default bookworm;
# no host name is written down here): the URI of the first source that
# carries it, in deb822 or one-line format.
apt_uri() {	# [SUITE]
	local suite=${1:-bookworm}

	{
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -r "$f" ] || continue
			awk -v s="$suite" 'BEGIN { RS = ""; FS = "\n" }
			{
				uri = ""; ok = 0
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^URIs:/) {
						split($i, u, " "); uri = u[2]
					}
					if ($i ~ /^Suites:/ &&
					    $i ~ ("[ \t]" s "([ \t]|$)"))
						ok = 1
				}
				if (ok && uri != "") print uri
			}' "$f"
		done
		cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
			2>/dev/null |
		awk -v s="$suite" '$1 == "deb" {
			i = 2
			if ($i ~ /^\[/)
				while ($i !~ /\]$/)
					i++
			if ($i ~ /^\[/ || $i ~ /\]$/)
				i++
			if ($(i + 1) == s)
				print $i
		}'
	} | head -n 1
}

# The archive for bookworm, which is also where the other releases are
# taken from (trixie and bookworm-backports are suites of it).
apt_mirror() {
	apt_uri bookworm
}

# Where the kernel build tree of an ABI is: "host PATH" (the host's own
# headers, or bookworm-backports' unpacked in the cache) or "trixie PATH"
# (a path inside the trixie root, usable only from there).
kbuild_dir() {
	if [ -d "/lib/modules/$1/build" ]; then
		echo "host /lib/modules/$1/build"
	elif [ -d "$cache/headers-$1/usr/src/linux-headers-$1" ]; then
		echo "host $cache/headers-$1/usr/src/linux-headers-$1"
	elif [ -d "$trixie_root/lib/modules/$1/build" ]; then
		echo "trixie /lib/modules/$1/build"
	else
		return 1
	fi
}
