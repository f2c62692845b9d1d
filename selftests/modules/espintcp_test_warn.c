// SPDX-License-Identifier: GPL-2.0-only
/*
 * Selftest helper: raise a kernel WARNING on load.  The VM runner boots
 * with panic_on_warn=1 and must report such a run as failed.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>

static int __init espintcp_test_warn_init(void)
{
	WARN(1, "deliberate warning from the espintcp selftests\n");
	return -EINVAL;
}

module_init(espintcp_test_warn_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("espintcp selftest: raise a WARNING on load");
