// SPDX-License-Identifier: GPL-2.0-only
/*
 * espintcp counters per network namespace, shown in
 * /proc/net/espintcp_stat in the style of /proc/net/xfrm_stat.
 */

#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#include "espintcp.h"

static const char * const espintcp_mib_names[ESPINTCP_MIB_MAX] = {
	[ESPINTCP_MIB_ESP_IN]		= "EspInFrames",
	[ESPINTCP_MIB_ESP_IN_BYTES]	= "EspInBytes",
	[ESPINTCP_MIB_IKE_IN]		= "IkeInMessages",
	[ESPINTCP_MIB_IKE_IN_BYTES]	= "IkeInBytes",
	[ESPINTCP_MIB_IKE_OUT]		= "IkeOutMessages",
	[ESPINTCP_MIB_IKE_OUT_BYTES]	= "IkeOutBytes",
	[ESPINTCP_MIB_KEEPALIVE_IN]	= "KeepaliveIn",
	[ESPINTCP_MIB_EMPTY_IN]		= "EmptyIn",
	[ESPINTCP_MIB_DROP_SHORT]	= "DropShort",
	[ESPINTCP_MIB_DROP_IKE_QUEUE]	= "DropIkeQueueFull",
	[ESPINTCP_MIB_DROP_NO_DEV]	= "DropNoDevice",
	[ESPINTCP_MIB_DROP_NOMEM]	= "DropNoMemory",
	[ESPINTCP_MIB_BAD_LENGTH]	= "BadLengthReset",
	[ESPINTCP_MIB_ESP_OUT]		= "EspOutFrames",
	[ESPINTCP_MIB_ESP_OUT_BYTES]	= "EspOutBytes",
	[ESPINTCP_MIB_OUT_NO_SOCKET]	= "EspOutNoSocket",
	[ESPINTCP_MIB_OUT_NOT_CONNECTED] = "EspOutNotConnected",
	[ESPINTCP_MIB_OUT_BUSY]		= "EspOutBusy",
	[ESPINTCP_MIB_OUT_QUEUE_FULL]	= "EspOutQueueFull",
	[ESPINTCP_MIB_OUT_ERROR]	= "EspOutError",
};

struct espintcp_net {
	struct espintcp_mib_counters __percpu *mib;
};

static unsigned int espintcp_net_id __read_mostly;

void espintcp_net_add(struct net *net, enum espintcp_mib field, u64 n)
{
	struct espintcp_net *en = net_generic(net, espintcp_net_id);

	this_cpu_add(en->mib->mibs[field], n);
}

static int espintcp_stat_show(struct seq_file *seq, void *v)
{
	struct net *net = seq_file_single_net(seq);
	struct espintcp_net *en = net_generic(net, espintcp_net_id);
	int i, cpu;

	for (i = 0; i < ESPINTCP_MIB_MAX; i++) {
		u64 sum = 0;

		for_each_possible_cpu(cpu)
			sum += per_cpu_ptr(en->mib, cpu)->mibs[i];
		seq_printf(seq, "%-24s\t%llu\n", espintcp_mib_names[i], sum);
	}
	return 0;
}

static int __net_init espintcp_net_init(struct net *net)
{
	struct espintcp_net *en = net_generic(net, espintcp_net_id);

	en->mib = alloc_percpu(struct espintcp_mib_counters);
	if (!en->mib)
		return -ENOMEM;
	if (!proc_create_net_single("espintcp_stat", 0444, net->proc_net,
				    espintcp_stat_show, NULL)) {
		free_percpu(en->mib);
		return -ENOMEM;
	}
	return 0;
}

static void __net_exit espintcp_net_exit(struct net *net)
{
	struct espintcp_net *en = net_generic(net, espintcp_net_id);

	remove_proc_entry("espintcp_stat", net->proc_net);
	free_percpu(en->mib);
}

static struct pernet_operations espintcp_net_ops = {
	.init	= espintcp_net_init,
	.exit	= espintcp_net_exit,
	.id	= &espintcp_net_id,
	.size	= sizeof(struct espintcp_net),
};

int espintcp_stats_init(void)
{
	return register_pernet_subsys(&espintcp_net_ops);
}

void espintcp_stats_exit(void)
{
	unregister_pernet_subsys(&espintcp_net_ops);
}
