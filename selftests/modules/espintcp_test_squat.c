// SPDX-License-Identifier: GPL-2.0-only
/*
 * Selftest helper: register a TCP ULP named "espintcp", standing in for
 * a kernel built with CONFIG_INET_ESPINTCP, so that the selftests can
 * check that espintcp.ko then refuses to load.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <net/tcp.h>

static int espintcp_test_squat_init_sk(struct sock *sk)
{
	return -EOPNOTSUPP;
}

static struct tcp_ulp_ops espintcp_test_squat_ops __read_mostly = {
	.name	= "espintcp",
	.owner	= THIS_MODULE,
	.init	= espintcp_test_squat_init_sk,
};

static int __init espintcp_test_squat_init(void)
{
	return tcp_register_ulp(&espintcp_test_squat_ops);
}

static void __exit espintcp_test_squat_exit(void)
{
	tcp_unregister_ulp(&espintcp_test_squat_ops);
}

module_init(espintcp_test_squat_init);
module_exit(espintcp_test_squat_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("espintcp selftest: occupy the espintcp ULP name");
