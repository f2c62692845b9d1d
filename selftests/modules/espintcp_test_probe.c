// SPDX-License-Identifier: GPL-2.0-only
/*
 * Selftest helper: watch what espintcp hands XFRM, and fail some of
 * strparser's atomic allocations on request.  Debian's kernels have no
 * fault injection; kprobes they have.
 *
 * Parameters (/sys/module/espintcp_test_probe/parameters/):
 *   esp_seen        packets given to xfrm4_rcv_encap/xfrm6_rcv_encap
 *   esp_not_own     of those, packets that were clones or had page
 *                   fragments shared with somebody else (a spliced
 *                   file's page cache, for one): ESP decrypts in place
 *   esp_bad_header  of those, packets whose network header was not an
 *                   IP header of their family in their own buffer
 *   fail_strp_clones  fail that many skb_clone() calls made by
 *                   strparser from now on
 *   holding         sockets owned through espintcp_test_hold now
 * Writing a number sets a counter.
 *
 * /sys/kernel/debug/espintcp_test_hold (not a parameter: those are
 * written and read under one lock):
 *   "LADDR LPORT RADDR RPORT MS": own the established TCP socket of that
 *   4-tuple, in the writer's network namespace, for MS milliseconds (at
 *   most 60 s), as a daemon's system call does while it runs; the write
 *   returns afterwards
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/if_ether.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/inet.h>
#include <linux/module.h>
#include <linux/nsproxy.h>
#include <linux/skbuff.h>
#include <linux/string.h>
#include <net/inet6_hashtables.h>
#include <net/inet_hashtables.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/tcp.h>

static atomic_long_t esp_seen, esp_not_own, esp_bad_header;
static atomic_long_t fail_strp_clones;
static atomic_long_t holding;

static int counter_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(kp->arg));
}

static int counter_set(const char *val, const struct kernel_param *kp)
{
	long v;
	int err = kstrtol(val, 0, &v);

	if (err)
		return err;
	atomic_long_set(kp->arg, v);
	return 0;
}

static const struct kernel_param_ops counter_ops = {
	.get = counter_get,
	.set = counter_set,
};

module_param_cb(esp_seen, &counter_ops, &esp_seen, 0644);
module_param_cb(esp_not_own, &counter_ops, &esp_not_own, 0644);
module_param_cb(esp_bad_header, &counter_ops, &esp_bad_header, 0644);
module_param_cb(fail_strp_clones, &counter_ops, &fail_strp_clones, 0644);

static struct sock *hold_lookup(struct net *net, const char *laddr, u16 lport,
				const char *raddr, u16 rport)
{
	struct inet_hashinfo *hinfo = net->ipv4.tcp_death_row.hashinfo;
	struct in6_addr l6, r6;
	__be32 l4, r4;

	if (in4_pton(laddr, -1, (u8 *)&l4, -1, NULL) &&
	    in4_pton(raddr, -1, (u8 *)&r4, -1, NULL))
		return __inet_lookup_established(net, hinfo, r4, htons(rport),
						 l4, lport, 0, 0);
#if IS_ENABLED(CONFIG_IPV6)
	if (in6_pton(laddr, -1, (u8 *)&l6, -1, NULL) &&
	    in6_pton(raddr, -1, (u8 *)&r6, -1, NULL))
		return __inet6_lookup_established(net, hinfo, &r6,
						  htons(rport), &l6, lport,
						  0, 0);
#endif
	return NULL;
}

static ssize_t hold_write(struct file *file, const char __user *ubuf,
			  size_t count, loff_t *ppos)
{
	char buf[128], laddr[INET6_ADDRSTRLEN], raddr[INET6_ADDRSTRLEN];
	struct net *net = current->nsproxy->net_ns;
	unsigned int ms;
	u16 lport, rport;
	struct sock *sk;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	if (sscanf(buf, "%45s %hu %45s %hu %u", laddr, &lport, raddr, &rport,
		   &ms) != 5 || ms > 60000)
		return -EINVAL;
	rcu_read_lock();
	sk = hold_lookup(net, laddr, lport, raddr, rport);
	rcu_read_unlock();
	if (!sk)
		return -ENOENT;
	if (!sk_fullsock(sk)) {
		sock_gen_put(sk);
		return -ENOENT;
	}
	lock_sock(sk);
	atomic_long_inc(&holding);
	msleep(ms);
	atomic_long_dec(&holding);
	release_sock(sk);
	sock_put(sk);
	return count;
}

static const struct file_operations hold_fops = {
	.owner = THIS_MODULE,
	.write = hold_write,
};

static struct dentry *hold_file;

module_param_cb(holding, &counter_ops, &holding, 0444);

static bool header_ok(const struct sk_buff *skb)
{
	const u8 *nh = skb_network_header(skb);

	if (nh < skb->head || nh >= skb->data)
		return false;
	if (skb->protocol == htons(ETH_P_IPV6))
		return skb->data - nh >= (int)sizeof(struct ipv6hdr) &&
		       ipv6_hdr(skb)->version == 6;
	return skb->data - nh >= (int)sizeof(struct iphdr) &&
	       ip_hdr(skb)->version == 4;
}

static int xfrm_rcv_encap_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct sk_buff *skb = (struct sk_buff *)regs_get_kernel_argument(regs, 0);

	atomic_long_inc(&esp_seen);
	if (skb_cloned(skb) || skb_has_shared_frag(skb))
		atomic_long_inc(&esp_not_own);
	if (!header_ok(skb))
		atomic_long_inc(&esp_bad_header);
	return 0;
}

static struct kprobe xfrm4_probe = {
	.symbol_name = "xfrm4_rcv_encap",
	.pre_handler = xfrm_rcv_encap_pre,
};

static struct kprobe xfrm6_probe = {
	.symbol_name = "xfrm6_rcv_encap",
	.pre_handler = xfrm_rcv_encap_pre,
};

/* skb_clone() called from strparser (__strp_recv may be inlined into
 * its callers): the return address is on top of the stack at entry.
 */
static int clone_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	unsigned long ret = *(unsigned long *)kernel_stack_pointer(regs);
	char sym[KSYM_SYMBOL_LEN];

	if (atomic_long_read(&fail_strp_clones) <= 0)
		return 1;
	sprint_symbol_no_offset(sym, ret);
	if (!strstr(sym, "strp_"))
		return 1;
	if (atomic_long_dec_if_positive(&fail_strp_clones) < 0)
		return 1;
	return 0;	/* fail this one on return */
}

static int clone_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct sk_buff *skb = (struct sk_buff *)regs_return_value(regs);

	kfree_skb(skb);
	regs_set_return_value(regs, 0);
	return 0;
}

static struct kretprobe clone_probe = {
	.kp.symbol_name = "skb_clone",
	.entry_handler = clone_entry,
	.handler = clone_return,
	.maxactive = 64,
};

static int __init espintcp_test_probe_init(void)
{
	int err;

	hold_file = debugfs_create_file("espintcp_test_hold", 0200, NULL,
					NULL, &hold_fops);
	err = register_kprobe(&xfrm4_probe);
	if (err)
		return err;
	err = register_kprobe(&xfrm6_probe);
	if (err)
		goto err4;
	err = register_kretprobe(&clone_probe);
	if (err)
		goto err6;
	return 0;

err6:
	unregister_kprobe(&xfrm6_probe);
err4:
	unregister_kprobe(&xfrm4_probe);
	debugfs_remove(hold_file);
	return err;
}

static void __exit espintcp_test_probe_exit(void)
{
	unregister_kretprobe(&clone_probe);
	unregister_kprobe(&xfrm6_probe);
	unregister_kprobe(&xfrm4_probe);
	debugfs_remove(hold_file);
}

module_init(espintcp_test_probe_init);
module_exit(espintcp_test_probe_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("espintcp selftest: watch ESP given to XFRM, fail strparser's skb clones, own sockets");
