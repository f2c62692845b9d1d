// SPDX-License-Identifier: GPL-2.0-only
/*
 * espintcp: ESP-in-TCP (RFC 8229, RFC 9329) as a loadable module, for
 * kernels built without CONFIG_INET_ESPINTCP.  It provides the same
 * user-space interface as the in-tree implementation: the "espintcp"
 * TCP upper layer protocol.
 */

#include <linux/module.h>

#include "espintcp.h"

/* Upstream lets any user attach the ULP to a socket, and anyone with
 * CAP_NET_ADMIN in their own network namespace's user namespace (any
 * local user, through an unprivileged user namespace) configure TCP
 * SAs.  A module loaded into a kernel that does not otherwise have
 * this code should not widen what unprivileged users reach: by default
 * both need CAP_NET_ADMIN in the initial user namespace (IKE daemons
 * run as root).  Containerized daemons can have upstream's reach back.
 */
bool espintcp_allow_userns;
module_param_named(allow_userns, espintcp_allow_userns, bool, 0644);
MODULE_PARM_DESC(allow_userns,
		 "Let callers without CAP_NET_ADMIN in the initial user namespace attach the ULP and configure TCP SAs, as upstream does (default: no)");

/* Every step that can fail comes before the first that publishes: once
 * the ULP is registered, a socket (and once the ESP types are swapped,
 * an SA) may hold a reference to this module, and a failed init would
 * free the module under it.
 */
static int __init espintcp_module_init(void)
{
	int err;

	err = espintcp_stats_init();
	if (err)
		return err;

	err = espintcp_esp_init();
	if (err)
		goto err_stats;

	err = espintcp_ulp_register();
	if (err == -EEXIST)
		pr_err("the \"%s\" TCP ULP is already registered (kernel built with CONFIG_INET_ESPINTCP?): not loading\n",
		       ESPINTCP_ULP_NAME);
	if (err)
		goto err_esp;

	espintcp_esp_publish();
	return 0;

err_esp:
	espintcp_esp_exit();
err_stats:
	espintcp_stats_exit();
	return err;
}

static void __exit espintcp_module_exit(void)
{
	espintcp_esp_exit();
	espintcp_ulp_unregister();
	espintcp_stats_exit();
}

module_init(espintcp_module_init);
module_exit(espintcp_module_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ESP-in-TCP encapsulation (RFC 8229/9329) as a TCP ULP");
MODULE_VERSION(ESPINTCP_VERSION);
MODULE_ALIAS_TCP_ULP(ESPINTCP_ULP_NAME);
/* The ESP types we stand in for; esp6 is optional. */
MODULE_SOFTDEP("pre: esp4 esp6");
