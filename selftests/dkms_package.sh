#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The Debian package (make deb), installed the way a user installs it,
# in throwaway Debian 12 and Debian 13 roots: runs on the host, as root
# (chroot), and leaves the host untouched.
#
#   - lintian reports no error on the .deb;
#   - Debian 12 with Debian 12's kernel headers: 'apt-get install ./deb'
#     builds and installs the module for that kernel, signed with DKMS's
#     key, with the version of the VERSION file;
#   - bookworm-backports' 6.12 headers installed afterwards: the kernel's
#     header hook builds it for that kernel too;
#   - reinstalling (as an upgrade does) leaves it built for both;
#   - a kernel with espintcp built in (CONFIG_INET_ESPINTCP=y) is
#     skipped, not failed;
#   - Debian 13 with its kernel headers: built and installed for it, and
#     the same skip;
#   - 'apt-get purge' removes every module it built, on both.
#
# The modules built in the roots are kept in build/dkms/ABI/ for
# dkms_load.sh, which loads them in the VM from a module tree laid out as
# the package installed it.  The roots start from a cached mmdebstrap
# tarball per release (headers and build tools installed, the rest of
# what the test installs downloaded), so that a run needs no network.
#
# usage: dkms_package.sh DEB

deb=$(realpath -e "${1:?usage: dkms_package.sh DEB}") || exit 1
cd "$(dirname "$0")" || exit 1
. lib/ktap.sh
. vm/lines.sh

top=$(cd .. && pwd)
version=$(cat "$top/VERSION")
export DEBIAN_FRONTEND=noninteractive
tmp=$(mktemp -d /var/tmp/espintcp-dkms.XXXXXX)
root=

cleanup() {
	rm -rf "$tmp"
}
trap cleanup EXIT

k61=$(vm/kver 6.1 2>/dev/null)
kbpo=$(vm/kver bpo 2>/dev/null)
k13=$(vm/kver trixie 2>/dev/null)

# Run a command in $root, with /dev, /proc and /sys mounted in a mount
# namespace of its own (nothing is left mounted afterwards).
in_root() {
	unshare --mount --fork -- sh -c '
		r=$1; shift
		mount --rbind /dev "$r/dev" && mount --make-rslave "$r/dev" &&
		mount -t proc proc "$r/proc" &&
		mount -t sysfs sysfs "$r/sys" &&
		mount -t tmpfs tmpfs "$r/tmp" || exit 125
		exec chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
	' sh "$root" "$@"
}

# The base root of a release, cached as a tarball: mmdebstrap with the
# archive this host uses.  The stamp holds what went in; a change (a new
# kernel ABI, for one) makes a new tarball.
base_root() {	# RELEASE
	local rel=$1 mirror sec tar stamp inc dl srcs=()

	mirror=$(apt_mirror)
	[ -n "$mirror" ] || { ktap_diag "no Debian archive in /etc/apt" >&2; return 1; }
	case $rel in
	bookworm)
		sec=$(apt_uri bookworm-security)
		srcs=("deb $mirror bookworm main"
		      "deb ${sec:-$mirror-security} bookworm-security main"
		      "deb $mirror bookworm-backports main")
		inc="linux-headers-amd64,linux-headers-$k61"
		dl="dkms openssl linux-headers-$kbpo" ;;
	trixie)
		srcs=("deb $mirror trixie main")
		inc="linux-headers-amd64,linux-headers-$k13"
		dl="dkms openssl" ;;
	esac
	tar=$cache/dkms-root-$rel.tar
	stamp="${srcs[*]} | $inc | $dl"
	[ -s "$tar" ] && [ "$(cat "$tar.stamp" 2>/dev/null)" = "$stamp" ] &&
		{ echo "$tar"; return 0; }
	ktap_diag "making the $rel root (mmdebstrap, a few minutes)" >&2
	mkdir -p "$cache"
	# Lists and downloaded packages stay: the test installs offline.
	mmdebstrap --quiet --variant=apt --format=tar \
		--skip=cleanup/apt/lists --skip=cleanup/apt/cache \
		--include="$inc" \
		--customize-hook="chroot \"\$1\" apt-get install -qq -y --download-only $dl >/dev/null" \
		"$rel" "$tar.tmp" "${srcs[@]}" >&2 || { rm -f "$tar.tmp"; return 1; }
	mv "$tar.tmp" "$tar"
	echo "$stamp" > "$tar.stamp"
	echo "$tar"
}

new_root() {	# RELEASE
	local tar

	tar=$(base_root "$1") || return 1
	root=$tmp/$1
	rm -rf "$root"
	mkdir -p "$root"
	tar -C "$root" -xpf "$tar" || return 1
	cp "$deb" "$root/root/"
}

# dkms status for one kernel, as "installed" or whatever it says.
dkms_state() {	# KVER
	in_root dkms status -m espintcp -k "$1" 2>/dev/null |
		sed -n "s/^espintcp[/,] *$version, $1, x86_64: //p"
}

# The module DKMS installed for KVER is where the package puts it, with
# the project's version, and signed with DKMS's key.
check_built() {	# KVER
	local k=$1 ko state signer v

	state=$(dkms_state "$k")
	ktap_diag "dkms status for $k: ${state:-(nothing)}"
	[ "$state" = installed ] ||
		{ ktap_fail_msg "espintcp is not installed for $k"; return 1; }
	ko=$(ls "$root"/lib/modules/"$k"/updates/dkms/espintcp.ko* 2>/dev/null |
		head -n 1)
	[ -n "$ko" ] ||
		{ ktap_fail_msg "no espintcp.ko in /lib/modules/$k/updates/dkms"; return 1; }
	v=$(modinfo -F version "$ko")
	[ "$v" = "$version" ] ||
		{ ktap_fail_msg "modinfo version '$v', VERSION says '$version'"; return 1; }
	signer=$(modinfo -F signer "$ko")
	ktap_diag "$k: ${ko#"$root"}, version $v, signed by '${signer:-nobody}'"
	[ "$signer" = "DKMS module signing key" ] &&
		[ -s "$root/var/lib/dkms/mok.pub" ] ||
		{ ktap_fail_msg "the module is not signed with DKMS's key"; return 1; }
	# For the VM test, as the package laid it out.
	mkdir -p "$top/build/dkms/$k"
	cp "$ko" "$top/build/dkms/$k/"
}

test_lintian() {
	local out rc

	lintian --fail-on error "$deb" > "$tmp/lintian.log" 2>&1
	rc=$?
	out=$(grep -v 'running with root' "$tmp/lintian.log")
	[ -n "$out" ] && sed 's/^/# lintian: /' <<<"$out"
	[ "$rc" = 0 ] || ktap_fail_msg "lintian reports errors"
}

# A new root of RELEASE with the package installed as a user installs
# it, and built for KVER.
install_in() {	# RELEASE KVER
	new_root "$1" || { ktap_fail_msg "no $1 root"; return 1; }
	in_root apt-get install -q -y "/root/${deb##*/}" > "$tmp/install.log" 2>&1 ||
		{ tail -n 20 "$tmp/install.log"; ktap_fail_msg "apt-get install failed"; return 1; }
	grep -E 'Building for|Signing|Installing' "$tmp/install.log" |
		sed 's/^/# /'
	check_built "$2"
}

# The tests that follow an install need it.
installed() {
	[ -n "$root" ] && [ -d "$root/usr/src/espintcp-$version" ] ||
		ktap_fail_msg "the package is not installed"
}

test_bookworm_install() {
	rm -rf "$top/build/dkms"
	install_in bookworm "$k61"
}

test_bookworm_headers_later() {
	installed || return 1
	in_root apt-get install -q -y "linux-headers-$kbpo" > "$tmp/bpo.log" 2>&1 ||
		{ tail -n 20 "$tmp/bpo.log"; ktap_fail_msg "installing the headers failed"; return 1; }
	check_built "$kbpo" && check_built "$k61"
}

# A kernel with espintcp of its own: this root's headers with
# CONFIG_INET_ESPINTCP=y in their configuration (.config for Debian 12's
# dkms, include/config/auto.conf for Debian 13's), under another release
# name.  DKMS declines (exit code 77, "skipped") and installs nothing;
# Debian 13's header hook then succeeds.  Debian 12's dkms (3.0.10)
# reports the skip from its hook as a failure (exit code 11, fixed in
# dkms 3.0.11): printed, not asserted.
test_skips_builtin() {	# KVER
	local k=${1/-amd64/-espintcp}-amd64 h rc hook left

	installed || return 1
	h=/usr/src/linux-headers-$k
	cp -a "$root/usr/src/linux-headers-$1" "$root$h"
	echo CONFIG_INET_ESPINTCP=y >> "$root$h/.config"
	[ -e "$root$h/include/config/auto.conf" ] &&
		echo CONFIG_INET_ESPINTCP=y >> "$root$h/include/config/auto.conf"
	mkdir -p "$root/lib/modules/$k"
	ln -s "$h" "$root/lib/modules/$k/build"
	in_root dkms install -m espintcp -v "$version" -k "$k" > "$tmp/ex.log" 2>&1
	rc=$?
	grep -i 'exclusive\|skip' "$tmp/ex.log" | head -n 3 | sed 's/^/# /'
	in_root /etc/kernel/header_postinst.d/dkms "$k" > "$tmp/hook.log" 2>&1
	hook=$?
	ktap_diag "$k: dkms install exit code $rc, header hook exit code $hook"
	left=$(cd "$root" && ls lib/modules/"$k"/updates/dkms/espintcp.ko* 2>/dev/null)
	[ -z "$left" ] && [ -z "$(dkms_state "$k")" ] ||
		{ ktap_fail_msg "built for a kernel with espintcp: $left"; rc=1; }
	rm -rf "$root$h" "$root/lib/modules/$k"
	[ "$rc" = 77 ] ||
		{ ktap_fail_msg "dkms install exited with $rc, not 77 (skipped)"; return 1; }
	[ "$hook" = 0 ] || [ "$1" = "$k61" ] ||
		ktap_fail_msg "the header hook failed on a kernel with espintcp"
}

# Reinstalling (an upgrade does the same) removes the module from every
# kernel first; Debian 12's DKMS then builds only for the running kernel
# and the newest one that has a /boot/config (none in the root).  In a
# root, where the running kernel is the host's and not installed, it
# builds for all instead: a /lib/modules folder of the host's release
# (without headers, like a running kernel whose headers are gone) makes
# it take the path of a real system.  The package's own postinst builds
# for every kernel with headers.
test_bookworm_reinstall() {
	local running rc=0

	installed || return 1
	running=$(uname -r)
	mkdir "$root/lib/modules/$running" || return 1
	in_root apt-get install -q -y --reinstall "/root/${deb##*/}" \
		> "$tmp/reinstall.log" 2>&1 ||
		{ tail -n 20 "$tmp/reinstall.log"; ktap_fail_msg "apt-get install --reinstall failed"; rc=1; }
	rmdir "$root/lib/modules/$running"
	grep -E 'Building for' "$tmp/reinstall.log" | sed 's/^/# /'
	[ $rc = 0 ] && check_built "$k61" && check_built "$kbpo"
}

# Purging the package removes what it built, for every kernel.
check_purged() {
	local left

	in_root apt-get purge -q -y espintcp-dkms > "$tmp/purge.log" 2>&1 ||
		{ tail -n 20 "$tmp/purge.log"; ktap_fail_msg "apt-get purge failed"; return 1; }
	left=$(cd "$root" && ls -d lib/modules/*/updates/dkms/espintcp.ko* \
		var/lib/dkms/espintcp usr/src/espintcp-* 2>/dev/null)
	[ -z "$left" ] || { ktap_fail_msg "left behind: $left"; return 1; }
	left=$(in_root dkms status -m espintcp) ||
		{ ktap_fail_msg "dkms status failed"; return 1; }
	[ -z "$left" ] || { ktap_fail_msg "dkms still lists: $left"; return 1; }
}

test_bookworm_purge() {
	installed || return 1
	check_purged
	rm -rf "$root"
	root=
}

test_trixie_install() {
	install_in trixie "$k13"
}

test_trixie_purge() {
	installed && check_purged
}

tests=(
	"lintian|test_lintian"
	"bookworm_install|test_bookworm_install"
	"bookworm_headers_later|test_bookworm_headers_later"
	"bookworm_reinstall|test_bookworm_reinstall"
	"bookworm_skips_builtin|test_skips_builtin $k61"
	"bookworm_purge|test_bookworm_purge"
	"trixie_install|test_trixie_install"
	"trixie_skips_builtin|test_skips_builtin $k13"
	"trixie_purge|test_trixie_purge"
)
ktap_plan ${#tests[@]}
for t in "${tests[@]}"; do
	if [ "$(id -u)" != 0 ] || ! command -v mmdebstrap >/dev/null ||
	   [ -z "$k61" ] || [ -z "$kbpo" ] || [ -z "$k13" ]; then
		ktap_run "dkms.${t%%|*}" ktap_skip_msg \
			"needs root, mmdebstrap and 'make deps KVERS=\"6.1 bpo trixie\"'"
	else
		# shellcheck disable=SC2086
		ktap_run "dkms.${t%%|*}" ${t#*|}
	fi
done
ktap_finish
