// SPDX-License-Identifier: GPL-2.0-only
/*
 * espintcp-stat: one line per espintcp socket, from sock_diag: its
 * 4-tuple, TCP state, ESP and IKE frames and bytes each way, keep-alives,
 * drops by reason and what is queued (include/uapi/linux/espintcp_diag.h
 * has the layout); or the namespace's totals from /proc/net/espintcp_stat.
 *
 * See espintcp-stat(8).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libmnl/libmnl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/espintcp_diag.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define PROG	"espintcp-stat"

static bool json;

/* The counters and state of one socket, by ESPINTCP_DIAG_* type. */
struct sock_info {
	int family;
	char local[INET6_ADDRSTRLEN], remote[INET6_ADDRSTRLEN];
	unsigned int lport, rport, state;
	uint32_t inode;
	bool have[ESPINTCP_DIAG_MAX + 1];
	uint64_t v[ESPINTCP_DIAG_MAX + 1];
};

static const char *const diag_names[ESPINTCP_DIAG_MAX + 1] = {
	[ESPINTCP_DIAG_ESP_IN]		= "esp_in",
	[ESPINTCP_DIAG_ESP_IN_BYTES]	= "esp_in_bytes",
	[ESPINTCP_DIAG_ESP_OUT]		= "esp_out",
	[ESPINTCP_DIAG_ESP_OUT_BYTES]	= "esp_out_bytes",
	[ESPINTCP_DIAG_IKE_IN]		= "ike_in",
	[ESPINTCP_DIAG_IKE_IN_BYTES]	= "ike_in_bytes",
	[ESPINTCP_DIAG_IKE_OUT]		= "ike_out",
	[ESPINTCP_DIAG_IKE_OUT_BYTES]	= "ike_out_bytes",
	[ESPINTCP_DIAG_KEEPALIVE_IN]	= "keepalive_in",
	[ESPINTCP_DIAG_EMPTY_IN]	= "empty_in",
	[ESPINTCP_DIAG_DROP_SHORT]	= "drop_short",
	[ESPINTCP_DIAG_DROP_IKE_QUEUE]	= "drop_ike_queue",
	[ESPINTCP_DIAG_DROP_NO_DEV]	= "drop_no_device",
	[ESPINTCP_DIAG_DROP_NOMEM]	= "drop_no_memory",
	[ESPINTCP_DIAG_BAD_LENGTH]	= "bad_length_reset",
	[ESPINTCP_DIAG_OUT_NOT_CONNECTED] = "drop_out_not_connected",
	[ESPINTCP_DIAG_OUT_BUSY]	= "drop_out_busy",
	[ESPINTCP_DIAG_OUT_QUEUE_FULL]	= "drop_out_queue_full",
	[ESPINTCP_DIAG_OUT_ERROR]	= "drop_out_error",
	[ESPINTCP_DIAG_TX_PENDING]	= "tx_pending_bytes",
	[ESPINTCP_DIAG_IKE_QUEUED]	= "ike_queued",
	[ESPINTCP_DIAG_IKE_QUEUED_BYTES] = "ike_queued_bytes",
	[ESPINTCP_DIAG_ESP_QUEUED]	= "esp_queued",
	[ESPINTCP_DIAG_ESP_QUEUED_BYTES] = "esp_queued_bytes",
};

static const char *const tcp_states[] = {
	"UNKNOWN", "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1",
	"FIN-WAIT-2", "TIME-WAIT", "UNCONN", "CLOSE-WAIT", "LAST-ACK",
	"LISTEN", "CLOSING",
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " [-j] [-n NETNS] [-s] [-w SECS]\n"
"  -j          JSON\n"
"  -n NETNS    in network namespace NETNS (as made by ip netns add)\n"
"  -s          the namespace's totals (/proc/net/espintcp_stat)\n"
"  -w SECS     repeat every SECS seconds, with rates\n");
}

static void die(const char *what)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The kernel shows a socket's ULP details to CAP_NET_ADMIN only. */
static bool net_admin(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return false;
	return d[CAP_NET_ADMIN / 32].effective & (1U << (CAP_NET_ADMIN % 32));
}

/* ---- sock_diag ---------------------------------------------------------- */

struct dump {
	struct sock_info *socks;
	size_t n, cap;
};

static int parse_espintcp(const struct nlattr *nest, struct sock_info *si)
{
	const struct nlattr *a;

	mnl_attr_for_each_nested(a, nest) {
		unsigned int t = mnl_attr_get_type(a);

		if (t == ESPINTCP_DIAG_PAD || t > ESPINTCP_DIAG_MAX)
			continue;
		if (mnl_attr_get_payload_len(a) == sizeof(uint64_t))
			si->v[t] = mnl_attr_get_u64(a);
		else if (mnl_attr_get_payload_len(a) == sizeof(uint32_t))
			si->v[t] = mnl_attr_get_u32(a);
		else
			continue;
		si->have[t] = true;
	}
	return 0;
}

/* Is this socket's ULP espintcp?  Fills in its counters if so. */
static bool parse_ulp(const struct nlattr *ulp, struct sock_info *si)
{
	const struct nlattr *a, *ours = NULL;
	bool named = false;

	mnl_attr_for_each_nested(a, ulp) {
		switch (mnl_attr_get_type(a)) {
		case INET_ULP_INFO_NAME:
			named = !mnl_attr_validate(a, MNL_TYPE_NUL_STRING) &&
				!strcmp(mnl_attr_get_str(a), "espintcp");
			break;
		case INET_ULP_INFO_ESPINTCP:
			ours = a;
			break;
		}
	}
	/* A socket being closed has the name but no counters any more:
	 * it no longer carries anything.
	 */
	if (!named || !ours)
		return false;
	parse_espintcp(ours, si);
	return true;
}

static int diag_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct inet_diag_msg *m = mnl_nlmsg_get_payload(nlh);
	struct dump *d = data;
	const struct nlattr *a;
	struct sock_info si;
	bool ours = false;

	memset(&si, 0, sizeof(si));
	mnl_attr_for_each(a, nlh, sizeof(*m))
		if (mnl_attr_get_type(a) == INET_DIAG_ULP_INFO)
			ours = parse_ulp(a, &si);
	if (!ours)
		return MNL_CB_OK;

	si.family = m->idiag_family;
	si.state = m->idiag_state;
	si.inode = m->idiag_inode;
	si.lport = ntohs(m->id.idiag_sport);
	si.rport = ntohs(m->id.idiag_dport);
	inet_ntop(si.family, m->id.idiag_src, si.local, sizeof(si.local));
	inet_ntop(si.family, m->id.idiag_dst, si.remote, sizeof(si.remote));
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 16;
		d->socks = realloc(d->socks, d->cap * sizeof(*d->socks));
		if (!d->socks)
			die("memory");
	}
	d->socks[d->n++] = si;
	return MNL_CB_OK;
}

static void dump_family(struct mnl_socket *nl, int family, struct dump *d)
{
	static char buf[32768];	/* a dump message is at most 32 KB */
	unsigned int seq = time(NULL) + family, portid;
	struct inet_diag_req_v2 *req;
	struct nlmsghdr *nlh;
	ssize_t n;
	int ret;

	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	req = mnl_nlmsg_put_extra_header(nlh, sizeof(*req));
	req->sdiag_family = family;
	req->sdiag_protocol = IPPROTO_TCP;
	req->idiag_states = ~0U;
	req->idiag_ext = 1 << (INET_DIAG_INFO - 1);

	portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		die("sock_diag");
	do {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0)
			die("sock_diag");
		ret = mnl_cb_run(buf, n, seq, portid, diag_cb, d);
	} while (ret > 0);
	/* No IPv6 in this kernel or namespace: nothing to list. */
	if (ret < 0 && !(family == AF_INET6 && errno == ENOENT))
		die("sock_diag");
}

/* ---- output ------------------------------------------------------------- */

static uint64_t v(const struct sock_info *s, int t)
{
	return s->v[t];
}

static void print_text(const struct sock_info *s, const struct sock_info *old,
		       double secs)
{
	const char *st = s->state < sizeof(tcp_states) / sizeof(tcp_states[0]) ?
			 tcp_states[s->state] : "?";
	bool v6 = s->family == AF_INET6;
	uint64_t drops = 0;
	int t;

	printf("%-10s %s%s%s:%u %s%s%s:%u", st, v6 ? "[" : "", s->local,
	       v6 ? "]" : "", s->lport, v6 ? "[" : "", s->remote,
	       v6 ? "]" : "", s->rport);
	printf(" esp in %" PRIu64 " (%" PRIu64 " B) out %" PRIu64 " (%" PRIu64
	       " B) ike in %" PRIu64 " (%" PRIu64 " B) out %" PRIu64 " (%"
	       PRIu64 " B) keepalive %" PRIu64,
	       v(s, ESPINTCP_DIAG_ESP_IN), v(s, ESPINTCP_DIAG_ESP_IN_BYTES),
	       v(s, ESPINTCP_DIAG_ESP_OUT), v(s, ESPINTCP_DIAG_ESP_OUT_BYTES),
	       v(s, ESPINTCP_DIAG_IKE_IN), v(s, ESPINTCP_DIAG_IKE_IN_BYTES),
	       v(s, ESPINTCP_DIAG_IKE_OUT), v(s, ESPINTCP_DIAG_IKE_OUT_BYTES),
	       v(s, ESPINTCP_DIAG_KEEPALIVE_IN));
	for (t = ESPINTCP_DIAG_DROP_SHORT; t <= ESPINTCP_DIAG_OUT_ERROR; t++)
		drops += v(s, t);
	printf(" drops %" PRIu64, drops);
	for (t = ESPINTCP_DIAG_DROP_SHORT; t <= ESPINTCP_DIAG_OUT_ERROR; t++)
		if (v(s, t))
			printf(" %s %" PRIu64, diag_names[t], v(s, t));
	printf(" queued tx %" PRIu64 " B ike %" PRIu64 " (%" PRIu64
	       " B) esp %" PRIu64 " (%" PRIu64 " B)",
	       v(s, ESPINTCP_DIAG_TX_PENDING), v(s, ESPINTCP_DIAG_IKE_QUEUED),
	       v(s, ESPINTCP_DIAG_IKE_QUEUED_BYTES),
	       v(s, ESPINTCP_DIAG_ESP_QUEUED),
	       v(s, ESPINTCP_DIAG_ESP_QUEUED_BYTES));
	if (old)
		printf(" rate esp in %.0f/s %.0f B/s out %.0f/s %.0f B/s",
		       (v(s, ESPINTCP_DIAG_ESP_IN) - v(old, ESPINTCP_DIAG_ESP_IN)) /
		       secs,
		       (v(s, ESPINTCP_DIAG_ESP_IN_BYTES) -
			v(old, ESPINTCP_DIAG_ESP_IN_BYTES)) / secs,
		       (v(s, ESPINTCP_DIAG_ESP_OUT) -
			v(old, ESPINTCP_DIAG_ESP_OUT)) / secs,
		       (v(s, ESPINTCP_DIAG_ESP_OUT_BYTES) -
			v(old, ESPINTCP_DIAG_ESP_OUT_BYTES)) / secs);
	putchar('\n');
}

static void print_json(const struct sock_info *s, const struct sock_info *old,
		       double secs, bool first)
{
	const char *st = s->state < sizeof(tcp_states) / sizeof(tcp_states[0]) ?
			 tcp_states[s->state] : "?";
	int t;

	printf("%s{\"state\": \"%s\", \"local\": \"%s\", \"lport\": %u, "
	       "\"remote\": \"%s\", \"rport\": %u", first ? "" : ", ", st,
	       s->local, s->lport, s->remote, s->rport);
	for (t = 0; t <= ESPINTCP_DIAG_MAX; t++)
		if (diag_names[t] && s->have[t])
			printf(", \"%s\": %" PRIu64, diag_names[t], s->v[t]);
	if (old) {
		printf(", \"rates\": {");
		for (t = ESPINTCP_DIAG_ESP_IN; t <= ESPINTCP_DIAG_IKE_OUT_BYTES;
		     t++)
			printf("%s\"%s\": %.1f", t == ESPINTCP_DIAG_ESP_IN ? "" :
			       ", ", diag_names[t],
			       (s->v[t] - old->v[t]) / secs);
		printf("}");
	}
	printf("}");
}

static const struct sock_info *find(const struct dump *d,
				    const struct sock_info *s)
{
	size_t i;

	for (i = 0; d && i < d->n; i++)
		if (d->socks[i].inode == s->inode &&
		    d->socks[i].lport == s->lport &&
		    d->socks[i].rport == s->rport &&
		    !strcmp(d->socks[i].remote, s->remote))
			return &d->socks[i];
	return NULL;
}

static void print_sockets(const struct dump *d, const struct dump *old,
			  double secs)
{
	size_t i;

	if (json) {
		printf("{\"time\": %ld, \"sockets\": [", (long)time(NULL));
		for (i = 0; i < d->n; i++)
			print_json(&d->socks[i], find(old, &d->socks[i]), secs,
				   !i);
		printf("]}\n");
	} else if (!d->n) {
		printf("no espintcp sockets\n");
	} else {
		for (i = 0; i < d->n; i++)
			print_text(&d->socks[i], find(old, &d->socks[i]), secs);
	}
	fflush(stdout);
}

/* /proc/net/espintcp_stat: "Name<tab>value" lines. */
static void print_totals(void)
{
	FILE *f = fopen("/proc/net/espintcp_stat", "r");
	char name[64];
	unsigned long long val;
	bool first = true;

	if (!f) {
		if (json)
			printf("{\"totals\": null}\n");
		else
			printf("no espintcp totals (/proc/net/espintcp_stat: %s)\n",
			       strerror(errno));
		return;
	}
	if (json)
		printf("{\"totals\": {");
	while (fscanf(f, "%63s %llu", name, &val) == 2) {
		if (json)
			printf("%s\"%s\": %llu", first ? "" : ", ", name, val);
		else
			printf("%-24s %llu\n", name, val);
		first = false;
	}
	if (json)
		printf("}}\n");
	fclose(f);
	fflush(stdout);
}

static void enter_netns(const char *name)
{
	if (espintcp_enter_netns(name)) {
		fprintf(stderr, PROG ": -n %s: %s\n", name,
			errno == ENOENT ? "no such network namespace" :
					  strerror(errno));
		exit(1);
	}
}

static void collect(struct mnl_socket *nl, struct dump *d)
{
	d->n = 0;
	dump_family(nl, AF_INET, d);
	dump_family(nl, AF_INET6, d);
}

int main(int argc, char **argv)
{
	struct dump cur = { 0 }, prev = { 0 };
	unsigned int wait = 0;
	struct mnl_socket *nl;
	bool totals = false;
	const char *netns = NULL;
	struct timespec t0, t1;
	int opt;

	while ((opt = getopt(argc, argv, "jn:sw:h")) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'n':
			netns = optarg;
			break;
		case 's':
			totals = true;
			break;
		case 'w': {
			char *end;

			errno = 0;
			wait = strtoul(optarg, &end, 10);
			if (errno || *end || optarg[0] == '-' || !wait ||
			    wait > 86400) {
				fprintf(stderr, PROG ": -w: seconds, from 1 to 86400\n");
				return 2;
			}
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	/* tcp_available_ulp is the initial namespace's: read it first. */
	if (!espintcp_ulp_available()) {
		printf(json ? "{\"loaded\": false}\n" :
			      "espintcp is not loaded: no espintcp sockets\n");
		return 0;
	}
	if (netns)
		enter_netns(netns);
	if (totals) {
		for (;;) {
			print_totals();
			if (!wait)
				return 0;
			sleep(wait);
		}
	}
	if (!net_admin()) {
		fprintf(stderr, PROG ": the kernel shows which sockets are espintcp's to CAP_NET_ADMIN only: run as root (or -s for the totals)\n");
		return 1;
	}

	nl = mnl_socket_open(NETLINK_SOCK_DIAG);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		die("sock_diag");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	collect(nl, &cur);
	print_sockets(&cur, NULL, 0);
	while (wait) {
		struct dump tmp;

		sleep(wait);
		tmp = prev;
		prev = cur;
		cur = tmp;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		collect(nl, &cur);
		if (!json)
			printf("\n");
		print_sockets(&cur, &prev, (t1.tv_sec - t0.tv_sec) +
			      (t1.tv_nsec - t0.tv_nsec) / 1e9);
		t0 = t1;
	}
	mnl_socket_close(nl);
	free(cur.socks);
	free(prev.socks);
	return 0;
}
