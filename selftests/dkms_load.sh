#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The module as the Debian package installs it, in the VM: the
# espintcp.ko that DKMS built and signed in dkms_package.sh's Debian 12
# or 13 root (kept in build/dkms/ABI/) is put where DKMS puts it,
# /lib/modules/ABI/updates/dkms/, on an overlay over the VM's module
# tree, and depmod runs, as on an installed system.  Then, with nothing
# loaded by hand:
#
#   - modinfo finds it there, with the project's version and DKMS's
#     signature;
#   - 'ip xfrm state add ... encap espintcp' fails with the kernel's
#     "Unsupported encapsulation type" until 'modprobe espintcp';
#   - a privileged setsockopt(TCP_ULP, "espintcp") loads it through its
#     alias; an unprivileged one (user namespace) does not;
#   - two libreswan daemons bring up a tunnel over TCP, pluto's attach
#     loading the module (libreswan.sh tcp_only.ipv4).
#
# Skips when build/dkms/ABI/ is empty (selftests/dkms_package.sh fills
# it; make check runs that first).

cd "$(dirname "$0")" || exit 1
. lib/ktap.sh
. lib/module.sh

top=$(cd .. && pwd)
k=$(uname -r)
mods=/lib/modules/$k
version=$(cat "$top/VERSION")
pkg_ko=$(ls "$top/build/dkms/$k"/espintcp.ko* 2>/dev/null | head -n 1)
tmp=$(mktemp -d)
overlay=

cleanup() {
	ip netns delete dkms 2>/dev/null
	rmmod espintcp 2>/dev/null
	[ -n "$overlay" ] && umount "$mods"
	rm -rf "$tmp"
}
trap cleanup EXIT

unloaded() {
	[ ! -e /sys/module/espintcp ] || espintcp_rmmod
}

# The module tree with the package's module in it.
setup_tree() {
	mkdir -p "$tmp/upper" "$tmp/work"
	mount -t overlay overlay \
		-o "lowerdir=$mods,upperdir=$tmp/upper,workdir=$tmp/work" \
		"$mods" || return 1
	overlay=1
	mkdir -p "$mods/updates/dkms" &&
		cp "$pkg_ko" "$mods/updates/dkms/" &&
		depmod -a "$k"
}

test_module_tree() {
	local f v signer

	f=$(modinfo -F filename espintcp 2>/dev/null)
	v=$(modinfo -F version espintcp 2>/dev/null)
	signer=$(modinfo -F signer espintcp 2>/dev/null)
	ktap_diag "modinfo espintcp: $f, version $v, signer '$signer'"
	# (Debian 13's kmod names it under /usr/lib/modules.)
	[[ $f == */lib/modules/"$k"/updates/dkms/espintcp.ko* ]] ||
		ktap_fail_msg "modprobe would not load the package's module" ||
		return 1
	[ "$v" = "$version" ] ||
		ktap_fail_msg "version '$v', VERSION says '$version'" || return 1
	[ "$signer" = "DKMS module signing key" ] ||
		ktap_fail_msg "not signed by DKMS's key"
}

test_xfrm_needs_modprobe() {
	local err rc=0

	unloaded || { ktap_fail_msg "espintcp does not unload"; return 1; }
	ip netns add dkms
	err=$(espintcp_add_test_sa dkms 2>&1) &&
		{ ktap_fail_msg "SA accepted without the module"; rc=1; }
	ktap_diag "without the module: $err"
	[[ $err == *"Unsupported encapsulation type"* ]] ||
		{ ktap_fail_msg "not the kernel's message"; rc=1; }
	[ ! -e /sys/module/espintcp ] ||
		{ ktap_fail_msg "the SA loaded the module"; rc=1; }
	modprobe espintcp ||
		{ ktap_fail_msg "modprobe espintcp failed"; rc=1; }
	err=$(espintcp_add_test_sa dkms 2>&1) ||
		{ ktap_fail_msg "SA refused after modprobe: $err"; rc=1; }
	ip netns delete dkms
	return $rc
}

# Attach the ULP in a network namespace of its own, as root, or with
# "nobody" as user nobody in a user namespace of its own.
attach() {	# [nobody]
	local pre=(unshare -n)

	[ "${1:-}" = nobody ] &&
		pre=(setpriv --reuid=65534 --regid=65534 --clear-groups unshare -Urn)
	"${pre[@]}" bash -c "$(declare -f espintcp_try_attach)
ip link set lo up && espintcp_try_attach"
}

test_autoload_by_attach() {
	local r

	unloaded || { ktap_fail_msg "espintcp does not unload"; return 1; }
	r=$(attach nobody)
	ktap_diag "attach by user nobody in a user namespace: $r"
	[ "$r" = ENOENT ] && [ ! -e /sys/module/espintcp ] ||
		ktap_fail_msg "an unprivileged attach loaded the module" ||
		return 1
	r=$(attach)
	ktap_diag "privileged attach: $r, module version" \
		"$(cat /sys/module/espintcp/version 2>/dev/null)"
	[ "$r" = ok ] ||
		ktap_fail_msg "the attach did not load the module" || return 1
	[ "$(cat /sys/module/espintcp/version)" = "$version" ] ||
		ktap_fail_msg "another espintcp was loaded"
}

test_libreswan() {
	local rc

	[ -x /usr/libexec/ipsec/pluto ] ||
		ktap_skip_msg "libreswan is not installed" || return
	unloaded || { ktap_fail_msg "espintcp does not unload"; return 1; }
	ESPINTCP_AUTOLOAD=1 ./libreswan.sh tcp_only.ipv4 > "$tmp/lsw" 2>&1
	rc=$?
	sed 's/^/#   /' "$tmp/lsw"
	[ "$rc" = 0 ] && grep -q '^ok 1 tcp_only.ipv4' "$tmp/lsw" ||
		ktap_fail_msg "libreswan's TCP tunnel failed" || return 1
	[ "$(cat /sys/module/espintcp/version 2>/dev/null)" = "$version" ] ||
		ktap_fail_msg "the package's module is not the one loaded"
}

tests=(module_tree xfrm_needs_modprobe autoload_by_attach libreswan)
ktap_plan ${#tests[@]}
if [ -z "$pkg_ko" ]; then
	for t in "${tests[@]}"; do
		ktap_run "dkms.$t" ktap_skip_msg \
			"no packaged module for $k (selftests/dkms_package.sh)"
	done
	ktap_finish
fi
unloaded || { echo "Bail out! espintcp does not unload"; exit 1; }
setup_tree || { echo "Bail out! cannot lay out the module tree"; exit 1; }
for t in "${tests[@]}"; do
	ktap_run "dkms.$t" "test_$t"
done
ktap_finish
