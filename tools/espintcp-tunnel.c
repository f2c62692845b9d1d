// SPDX-License-Identifier: GPL-2.0-only
/*
 * espintcp-tunnel: keep a static ESP-in-TCP tunnel (RFC 9329) up without
 * an IKE daemon.  It opens the TCP connection the way an IKE daemon does
 * (the originator writes the "IKETCP" prefix, the responder checks it),
 * attaches the espintcp ULP, installs the SAs ("encap espintcp" with the
 * connection's ports) and the policies over XFRM netlink, and stays in
 * the foreground.  When the connection is lost, the originator connects
 * again (with backoff) and the responder accepts the new connection;
 * either way the SAs are updated with the new ports (XFRM_MSG_UPDSA).
 * SIGINT or SIGTERM removes exactly what it installed.
 *
 * See espintcp-tunnel(8) for the options and the configuration file.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libmnl/libmnl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define PROG		"espintcp-tunnel"
#define PREFIX		"IKETCP"
#define PREFIX_LEN	6
#define MARKER_LEN	4		/* the non-ESP marker before IKE */
#define ECHO_REQ	"espintcp-tunnel echo request "
#define ECHO_REP	"espintcp-tunnel echo reply "
#define BACKOFF_MAX	30		/* seconds between connection attempts */
#define MAX_KEY		64		/* bytes */
#define MAX_REPLAY	4096

/* ---- logging ---------------------------------------------------------- */

static bool verbose;

static void __attribute__((format(printf, 1, 2)))
logmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

#define debug(...) do { if (verbose) logmsg(__VA_ARGS__); } while (0)

/* ---- configuration ---------------------------------------------------- */

enum alg_kind { ALG_AEAD, ALG_ENC, ALG_AUTH };

struct alg_info {
	const char *name;
	enum alg_kind kind;
	unsigned char keylens[3];	/* bytes; 0 ends the list */
	unsigned int bits;		/* ICV or truncation, default */
	unsigned int max_bits;
};

/* What ESP in the kernel offers, with the key sizes each takes (an AEAD
 * key ends with its salt or nonce: 4 bytes for GCM and ChaCha20, 3 for
 * CCM).
 */
static const struct alg_info algs[] = {
	{ "rfc4106(gcm(aes))", ALG_AEAD, { 20, 28, 36 }, 128, 128 },
	{ "rfc4309(ccm(aes))", ALG_AEAD, { 19, 27, 35 }, 128, 128 },
	{ "rfc7539esp(chacha20,poly1305)", ALG_AEAD, { 36 }, 128, 128 },
	{ "cbc(aes)", ALG_ENC, { 16, 24, 32 }, 0, 0 },
	{ "hmac(sha1)", ALG_AUTH, { 20 }, 96, 160 },
	{ "hmac(sha256)", ALG_AUTH, { 32 }, 128, 256 },
	{ "hmac(sha384)", ALG_AUTH, { 48 }, 192, 384 },
	{ "hmac(sha512)", ALG_AUTH, { 64 }, 256, 512 },
};

struct key {
	unsigned char b[MAX_KEY];
	unsigned int len;
};

struct prefix {
	int family;
	xfrm_address_t addr;
	unsigned int len;
};

static struct conf {
	char role;			/* 'l'isten or 'c'onnect */
	bool listen;
	int family;
	xfrm_address_t local, remote;
	bool have_local, have_remote;
	unsigned int port;		/* the responder's */
	unsigned int sport;		/* the originator's, 0: any */
	unsigned char mode;
	struct prefix lnet, rnet;
	const struct alg_info *aead, *enc, *auth;
	unsigned int bits;		/* ICV or truncation */
	unsigned int icv, trunc;	/* as given, 0: the default */
	struct key key_out, key_in, auth_out, auth_in;
	uint32_t spi_out, spi_in;
	unsigned int replay;
	bool esn;
	const char *netns;
	unsigned int echo, dead;	/* seconds, 0: off */
} c = {
	.port = 4500,
	.mode = XFRM_MODE_TUNNEL,
	.replay = 32,
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " listen|connect --local ADDR --remote ADDR [OPTION...]\n"
"       " PROG " [listen|connect] --config FILE [OPTION...]\n"
"  --local ADDR, --remote ADDR  the two ends (IPv4 or IPv6)\n"
"  --port PORT                  the responder's TCP port (4500)\n"
"  --sport PORT                 the originator's source port (any)\n"
"  --mode tunnel|transport      (tunnel)\n"
"  --local-net PREFIX, --remote-net PREFIX\n"
"                               traffic selectors (tunnel mode; the hosts)\n"
"  --aead NAME [--icv BITS]     an AEAD: rfc4106(gcm(aes)),\n"
"                               rfc4309(ccm(aes)), rfc7539esp(chacha20,poly1305)\n"
"  --enc NAME --auth NAME [--trunc BITS]\n"
"                               or cbc(aes) with hmac(sha1|sha256|sha384|sha512)\n"
"  --spi-out SPI --key-out HEX [--auth-key-out HEX]\n"
"  --spi-in SPI --key-in HEX [--auth-key-in HEX]\n"
"                               per direction (out: local to remote)\n"
"  --replay-window N            (32, at most %d)\n"
"  --esn                        64-bit sequence numbers\n"
"  --netns NAME                 work in network namespace NAME\n"
"  --echo SECS [--dead SECS]    liveness: an echo every SECS seconds, the\n"
"                               peer dead after SECS (3 x echo) without reply\n"
"  --config FILE                options from FILE: one 'name value' a line\n"
"                               ('role listen' or 'role connect' too)\n"
"  --verbose, --help\n", MAX_REPLAY);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
bad(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static int parse_addr(const char *s, xfrm_address_t *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &a->a4) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, s, a->a6) == 1)
		return AF_INET6;
	return 0;
}

static unsigned long parse_num(const char *opt, const char *s,
			       unsigned long max)
{
	unsigned long v;
	char *end;

	/* Decimal, or hexadecimal after 0x: never octal. */
	errno = 0;
	v = strtoul(s, &end, s[0] == '0' && (s[1] == 'x' || s[1] == 'X') ?
		    16 : 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		bad("--%s: '%s' is not a number from 0 to %lu", opt, s, max);
	return v;
}

static void parse_prefix(const char *opt, const char *s, struct prefix *p)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash;
	unsigned int max;

	if (strlen(s) >= sizeof(buf))
		bad("--%s: '%s' is not an address prefix", opt, s);
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	p->family = parse_addr(buf, &p->addr);
	if (!p->family)
		bad("--%s: '%s' is not an address prefix", opt, s);
	max = p->family == AF_INET ? 32 : 128;
	p->len = slash ? parse_num(opt, slash, max) : max;
}

static void parse_key(const char *opt, const char *s, struct key *k)
{
	size_t n;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	n = strlen(s);
	if (!n || n % 2 || n / 2 > MAX_KEY)
		bad("--%s: a key is an even number of hex digits, at most %d bytes",
		    opt, MAX_KEY);
	for (k->len = 0; k->len < n / 2; k->len++) {
		unsigned int b;

		if (!isxdigit((unsigned char)s[2 * k->len]) ||
		    !isxdigit((unsigned char)s[2 * k->len + 1]) ||
		    sscanf(s + 2 * k->len, "%2x", &b) != 1)
			bad("--%s: '%s' is not hexadecimal", opt, s);
		k->b[k->len] = b;
	}
}

static const struct alg_info *parse_alg(const char *opt, const char *s,
					enum alg_kind kind)
{
	const char *kinds[] = { "AEAD", "encryption", "authentication" };
	size_t i;

	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (algs[i].kind == kind && !strcmp(algs[i].name, s))
			return &algs[i];
	fprintf(stderr, PROG ": --%s: unknown %s algorithm '%s'; known:",
		opt, kinds[kind], s);
	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (algs[i].kind == kind)
			fprintf(stderr, " %s", algs[i].name);
	fputc('\n', stderr);
	exit(2);
}

enum {
	OPT_LOCAL = 256, OPT_REMOTE, OPT_PORT, OPT_SPORT, OPT_MODE, OPT_LNET,
	OPT_RNET,
	OPT_AEAD, OPT_ICV, OPT_ENC, OPT_AUTH, OPT_TRUNC, OPT_KEY_OUT, OPT_KEY_IN,
	OPT_AKEY_OUT, OPT_AKEY_IN, OPT_SPI_OUT, OPT_SPI_IN, OPT_REPLAY, OPT_ESN,
	OPT_NETNS, OPT_ECHO, OPT_DEAD, OPT_CONFIG, OPT_VERBOSE, OPT_HELP,
	OPT_ROLE,
};

static const struct option options[] = {
	{ "local", required_argument, NULL, OPT_LOCAL },
	{ "remote", required_argument, NULL, OPT_REMOTE },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "sport", required_argument, NULL, OPT_SPORT },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "local-net", required_argument, NULL, OPT_LNET },
	{ "remote-net", required_argument, NULL, OPT_RNET },
	{ "aead", required_argument, NULL, OPT_AEAD },
	{ "icv", required_argument, NULL, OPT_ICV },
	{ "enc", required_argument, NULL, OPT_ENC },
	{ "auth", required_argument, NULL, OPT_AUTH },
	{ "trunc", required_argument, NULL, OPT_TRUNC },
	{ "key-out", required_argument, NULL, OPT_KEY_OUT },
	{ "key-in", required_argument, NULL, OPT_KEY_IN },
	{ "auth-key-out", required_argument, NULL, OPT_AKEY_OUT },
	{ "auth-key-in", required_argument, NULL, OPT_AKEY_IN },
	{ "spi-out", required_argument, NULL, OPT_SPI_OUT },
	{ "spi-in", required_argument, NULL, OPT_SPI_IN },
	{ "replay-window", required_argument, NULL, OPT_REPLAY },
	{ "esn", no_argument, NULL, OPT_ESN },
	{ "netns", required_argument, NULL, OPT_NETNS },
	{ "echo", required_argument, NULL, OPT_ECHO },
	{ "dead", required_argument, NULL, OPT_DEAD },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "role", required_argument, NULL, OPT_ROLE },
	{ NULL, 0, NULL, 0 },
};

static void read_config(const char *path, int depth);

static void set_option(int id, const char *name, const char *arg, int depth)
{
	int fam;

	switch (id) {
	case OPT_ROLE:
		if (strcmp(arg, "listen") && strcmp(arg, "connect"))
			bad("role: 'listen' or 'connect', not '%s'", arg);
		c.role = arg[0];
		break;
	case OPT_LOCAL:
	case OPT_REMOTE:
		fam = parse_addr(arg, id == OPT_LOCAL ? &c.local : &c.remote);
		if (!fam)
			bad("--%s: '%s' is not an IPv4 or IPv6 address", name,
			    arg);
		if (c.family && fam != c.family)
			bad("--local and --remote: address family mismatch");
		c.family = fam;
		*(id == OPT_LOCAL ? &c.have_local : &c.have_remote) = true;
		break;
	case OPT_PORT:
		c.port = parse_num(name, arg, 65535);
		if (!c.port)
			bad("--port: 0 is no port");
		break;
	case OPT_SPORT:
		c.sport = parse_num(name, arg, 65535);
		break;
	case OPT_MODE:
		if (!strcmp(arg, "tunnel"))
			c.mode = XFRM_MODE_TUNNEL;
		else if (!strcmp(arg, "transport"))
			c.mode = XFRM_MODE_TRANSPORT;
		else
			bad("--mode: 'tunnel' or 'transport', not '%s'", arg);
		break;
	case OPT_LNET:
		parse_prefix(name, arg, &c.lnet);
		break;
	case OPT_RNET:
		parse_prefix(name, arg, &c.rnet);
		break;
	case OPT_AEAD:
		c.aead = parse_alg(name, arg, ALG_AEAD);
		break;
	case OPT_ENC:
		c.enc = parse_alg(name, arg, ALG_ENC);
		break;
	case OPT_AUTH:
		c.auth = parse_alg(name, arg, ALG_AUTH);
		break;
	case OPT_ICV:
		c.icv = parse_num(name, arg, 512);
		break;
	case OPT_TRUNC:
		c.trunc = parse_num(name, arg, 512);
		break;
	case OPT_KEY_OUT:
		parse_key(name, arg, &c.key_out);
		break;
	case OPT_KEY_IN:
		parse_key(name, arg, &c.key_in);
		break;
	case OPT_AKEY_OUT:
		parse_key(name, arg, &c.auth_out);
		break;
	case OPT_AKEY_IN:
		parse_key(name, arg, &c.auth_in);
		break;
	case OPT_SPI_OUT:
		c.spi_out = parse_num(name, arg, UINT32_MAX);
		break;
	case OPT_SPI_IN:
		c.spi_in = parse_num(name, arg, UINT32_MAX);
		break;
	case OPT_REPLAY:
		c.replay = parse_num(name, arg, MAX_REPLAY);
		break;
	case OPT_ESN:
		c.esn = true;
		break;
	case OPT_NETNS:
		c.netns = strdup(arg);
		break;
	case OPT_ECHO:
		c.echo = parse_num(name, arg, 3600);
		break;
	case OPT_DEAD:
		c.dead = parse_num(name, arg, 3 * 3600);
		break;
	case OPT_CONFIG:
		read_config(arg, depth + 1);
		break;
	case OPT_VERBOSE:
		verbose = true;
		break;
	case OPT_HELP:
		usage(stdout);
		exit(0);
	default:
		fprintf(stderr, "try '" PROG " --help'\n");
		exit(2);
	}
}

/* A configuration file holds the long options without their dashes, one
 * a line: "name value", "name = value" or, for flags, "name"; '#' starts
 * a comment.
 */
static void read_config(const char *path, int depth)
{
	char line[512];
	unsigned int n = 0;
	FILE *f;

	if (depth > 4)
		bad("%s: configuration files include each other", path);
	f = fopen(path, "r");
	if (!f)
		bad("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *name, *val, *end;
		const struct option *o;

		n++;
		end = strchr(line, '#');
		if (end)
			*end = '\0';
		name = line + strspn(line, " \t\r\n");
		if (!*name)
			continue;
		val = name + strcspn(name, " \t=\r\n");
		if (*val)
			*val++ = '\0';
		val += strspn(val, " \t=");
		end = val + strlen(val);
		while (end > val && isspace((unsigned char)end[-1]))
			*--end = '\0';
		for (o = options; o->name; o++)
			if (!strcmp(o->name, name))
				break;
		if (!o->name || o->val == OPT_HELP)
			bad("%s:%u: unknown option '%s'", path, n, name);
		if ((o->has_arg == required_argument) != (*val != '\0'))
			bad("%s:%u: '%s' %s a value", path, n, name,
			    o->has_arg == required_argument ? "needs" :
							      "takes no");
		set_option(o->val, name, val, depth);
	}
	fclose(f);
}

static bool key_len_ok(const struct alg_info *a, unsigned int len)
{
	unsigned int i;

	for (i = 0; i < sizeof(a->keylens) && a->keylens[i]; i++)
		if (a->keylens[i] == len)
			return true;
	return false;
}

static void check_key(const char *opt, const struct alg_info *a,
		      const struct key *k)
{
	char lens[32] = "";
	unsigned int i;

	if (!k->len)
		bad("--%s is missing", opt);
	if (key_len_ok(a, k->len))
		return;
	for (i = 0; i < sizeof(a->keylens) && a->keylens[i]; i++)
		snprintf(lens + strlen(lens), sizeof(lens) - strlen(lens),
			 "%s%u", !i ? "" : i + 1 < sizeof(a->keylens) &&
			 a->keylens[i + 1] ? ", " : " or ", a->keylens[i]);
	bad("--%s: %s takes a key of %s bytes, not %u", opt, a->name, lens,
	    k->len);
}

static void host_prefix(struct prefix *p, const xfrm_address_t *a)
{
	p->family = c.family;
	p->addr = *a;
	p->len = c.family == AF_INET ? 32 : 128;
}

static void check_conf(void)
{
	if (!c.have_local || !c.have_remote)
		bad("--local and --remote are required");
	if (c.aead && (c.enc || c.auth))
		bad("--aead, or --enc with --auth, not both");
	if (!c.aead && !(c.enc && c.auth))
		bad("an algorithm is required: --aead, or --enc with --auth");
	if (c.aead) {
		check_key("key-out", c.aead, &c.key_out);
		check_key("key-in", c.aead, &c.key_in);
		if (c.auth_out.len || c.auth_in.len)
			bad("--auth-key-* go with --auth, not with --aead");
		if (c.trunc)
			bad("--trunc goes with --auth; an AEAD has --icv");
		c.bits = c.icv ? c.icv : c.aead->bits;
		if (c.bits != 64 && c.bits != 96 && c.bits != 128)
			bad("--icv: 64, 96 or 128 bits, not %u", c.bits);
		if (c.bits != 128 && strncmp(c.aead->name, "rfc7539", 7) == 0)
			bad("--icv: %s has a 128-bit ICV", c.aead->name);
	} else {
		check_key("key-out", c.enc, &c.key_out);
		check_key("key-in", c.enc, &c.key_in);
		check_key("auth-key-out", c.auth, &c.auth_out);
		check_key("auth-key-in", c.auth, &c.auth_in);
		if (c.icv)
			bad("--icv goes with --aead; --auth has --trunc");
		c.bits = c.trunc ? c.trunc : c.auth->bits;
		if (c.bits < 96 || c.bits > c.auth->max_bits || c.bits % 8)
			bad("--trunc: %s truncates to 96 to %u bits, in bytes",
			    c.auth->name, c.auth->max_bits);
	}
	if (!c.spi_out || !c.spi_in)
		bad("SPI 0 is reserved (RFC 4303): --spi-out and --spi-in are required, from 256 up");
	if (c.spi_out < 256 || c.spi_in < 256)
		bad("SPIs 1 to 255 are reserved (RFC 4303): use 256 and up");
	if (c.esn && !c.replay)
		bad("--esn needs a replay window (--replay-window 1 or more)");
	if (c.listen && c.sport)
		bad("--sport is the originator's (connect)");
	if (c.dead && !c.echo)
		bad("--dead needs --echo");
	if (c.echo && !c.dead)
		c.dead = 3 * c.echo;
	if (c.echo && c.dead <= c.echo)
		bad("--dead must be longer than --echo");

	if (c.mode == XFRM_MODE_TRANSPORT && (c.lnet.family || c.rnet.family))
		bad("--local-net and --remote-net need --mode tunnel: transport mode protects the two hosts");
	if (!c.lnet.family)
		host_prefix(&c.lnet, &c.local);
	if (!c.rnet.family)
		host_prefix(&c.rnet, &c.remote);
	if (c.lnet.family != c.family || c.rnet.family != c.family)
		bad("--local-net and --remote-net: address family mismatch (the tunnel's own addresses are IPv%c)",
		    c.family == AF_INET ? '4' : '6');
}

/* ---- XFRM netlink ------------------------------------------------------ */

static struct mnl_socket *nl;
static unsigned int nl_seq;

/* Send one request and wait for its acknowledgement.  Returns 0, or a
 * negative errno with the kernel's own message (extack), if any, in
 * @why.
 */
static int nl_request(struct nlmsghdr *nlh, char *why, size_t whylen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	unsigned int portid = mnl_socket_get_portid(nl);
	const struct nlmsgerr *e;
	const struct nlattr *a;
	ssize_t n;

	why[0] = '\0';
	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = ++nl_seq;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		nlh = (struct nlmsghdr *)buf;
		if (!mnl_nlmsg_ok(nlh, n) || nlh->nlmsg_seq != nl_seq ||
		    nlh->nlmsg_pid != portid)
			continue;
		if (nlh->nlmsg_type != NLMSG_ERROR)
			continue;
		e = mnl_nlmsg_get_payload(nlh);
		if (!e->error || !(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
			return e->error;
		/* The attributes follow the request, or its header only. */
		mnl_attr_for_each(a, nlh, sizeof(*e) +
				  (nlh->nlmsg_flags & NLM_F_CAPPED ?
				   0 : e->msg.nlmsg_len - sizeof(e->msg))) {
			if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
			    !mnl_attr_validate(a, MNL_TYPE_NUL_STRING))
				snprintf(why, whylen, "%s",
					 mnl_attr_get_str(a));
		}
		return e->error;
	}
}

static const char *addr_str(int family, const xfrm_address_t *a)
{
	static char bufs[4][INET6_ADDRSTRLEN];
	static unsigned int i;
	char *b = bufs[i++ % 4];

	inet_ntop(family, a, b, INET6_ADDRSTRLEN);
	return b;
}

static const char *err_str(int err, const char *why)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "%s%s%s", strerror(-err), *why ? ": " : "",
		 why);
	return buf;
}

/* The SA from @src to @dst with @spi, carried in TCP from @sport to
 * @dport.
 */
struct sa {
	const xfrm_address_t *src, *dst;
	uint32_t spi;
	const struct key *key, *auth_key;
	bool installed;
};

static struct sa sa_out = {
	.src = &c.local, .dst = &c.remote, .key = &c.key_out,
	.auth_key = &c.auth_out,
};
static struct sa sa_in = {
	.src = &c.remote, .dst = &c.local, .key = &c.key_in,
	.auth_key = &c.auth_in,
};

static int sa_send(struct sa *s, uint16_t type, unsigned int sport,
		   unsigned int dport, char *why, size_t whylen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct xfrm_usersa_info *p;
	struct xfrm_encap_tmpl encap = {
		.encap_type = 7,	/* TCP_ENCAP_ESPINTCP */
		.encap_sport = htons(sport),
		.encap_dport = htons(dport),
	};
	union {
		struct xfrm_algo_aead aead;
		struct xfrm_algo enc;
		struct xfrm_algo_auth auth;
		struct xfrm_replay_state_esn esn;
		char b[sizeof(struct xfrm_algo_auth) + MAX_KEY +
		       MAX_REPLAY / 8];
	} u;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = type == XFRM_MSG_NEWSA ? NLM_F_CREATE | NLM_F_EXCL :
						    0;
	p = mnl_nlmsg_put_extra_header(nlh, sizeof(*p));
	p->family = c.family;
	p->saddr = *s->src;
	p->id.daddr = *s->dst;
	p->id.spi = htonl(s->spi);
	p->id.proto = IPPROTO_ESP;
	p->mode = c.mode;
	/* Windows over 32 packets, and ESN, take the ESN replay state,
	 * and then the legacy window must be 0.
	 */
	p->replay_window = c.esn || c.replay > 32 ? 0 : c.replay;
	p->lft.soft_byte_limit = XFRM_INF;
	p->lft.hard_byte_limit = XFRM_INF;
	p->lft.soft_packet_limit = XFRM_INF;
	p->lft.hard_packet_limit = XFRM_INF;
	if (c.esn)
		p->flags |= XFRM_STATE_ESN;

	memset(&u, 0, sizeof(u));
	if (c.aead) {
		strcpy(u.aead.alg_name, c.aead->name);
		u.aead.alg_key_len = s->key->len * 8;
		u.aead.alg_icv_len = c.bits;
		memcpy(u.aead.alg_key, s->key->b, s->key->len);
		mnl_attr_put(nlh, XFRMA_ALG_AEAD,
			     sizeof(u.aead) + s->key->len, &u);
	} else {
		strcpy(u.enc.alg_name, c.enc->name);
		u.enc.alg_key_len = s->key->len * 8;
		memcpy(u.enc.alg_key, s->key->b, s->key->len);
		mnl_attr_put(nlh, XFRMA_ALG_CRYPT,
			     sizeof(u.enc) + s->key->len, &u);
		memset(&u, 0, sizeof(u));
		strcpy(u.auth.alg_name, c.auth->name);
		u.auth.alg_key_len = s->auth_key->len * 8;
		u.auth.alg_trunc_len = c.bits;
		memcpy(u.auth.alg_key, s->auth_key->b, s->auth_key->len);
		mnl_attr_put(nlh, XFRMA_ALG_AUTH_TRUNC,
			     sizeof(u.auth) + s->auth_key->len, &u);
	}
	if (c.esn || c.replay > 32) {
		memset(&u, 0, sizeof(u));
		u.esn.replay_window = c.replay;
		u.esn.bmp_len = (c.replay + 31) / 32;
		mnl_attr_put(nlh, XFRMA_REPLAY_ESN_VAL,
			     sizeof(u.esn) + u.esn.bmp_len * sizeof(__u32), &u);
	}
	mnl_attr_put(nlh, XFRMA_ENCAP, sizeof(encap), &encap);
	return nl_request(nlh, why, whylen);
}

static int sa_delete(struct sa *s)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], why[256];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct xfrm_usersa_id *id;
	int err;

	if (!s->installed)
		return 0;
	nlh->nlmsg_type = XFRM_MSG_DELSA;
	id = mnl_nlmsg_put_extra_header(nlh, sizeof(*id));
	id->daddr = *s->dst;
	id->spi = htonl(s->spi);
	id->family = c.family;
	id->proto = IPPROTO_ESP;
	mnl_attr_put(nlh, XFRMA_SRCADDR, sizeof(*s->src), s->src);
	err = nl_request(nlh, why, sizeof(why));
	/* Gone already (flushed by someone else): nothing left to undo. */
	if (err && err != -ESRCH && err != -ENOENT)
		logmsg("removing SA 0x%08x: %s", s->spi, err_str(err, why));
	else
		debug("removed SA 0x%08x %s -> %s", s->spi,
		      addr_str(c.family, s->src), addr_str(c.family, s->dst));
	s->installed = false;
	return err;
}

/* Install (@update false) or update the SAs for a connection from
 * @lport to @rport, local to remote.
 */
static int sa_install(bool update, unsigned int lport, unsigned int rport)
{
	uint16_t type = update ? XFRM_MSG_UPDSA : XFRM_MSG_NEWSA;
	struct sa *sas[2] = { &sa_out, &sa_in };
	char why[256];
	int i, err;

	for (i = 0; i < 2; i++) {
		struct sa *s = sas[i];
		bool out = s == &sa_out;

		err = sa_send(s, type, out ? lport : rport, out ? rport : lport,
			      why, sizeof(why));
		if (err == -EEXIST) {
			logmsg("SPI 0x%08x to %s is already in use", s->spi,
			       addr_str(c.family, s->dst));
			return err;
		}
		if (err) {
			logmsg("%s SA 0x%08x %s -> %s: %s",
			       update ? "updating" : "adding", s->spi,
			       addr_str(c.family, s->src),
			       addr_str(c.family, s->dst), err_str(err, why));
			return err;
		}
		s->installed = true;
	}
	return 0;
}

static void log_sas(const char *what, unsigned int lport, unsigned int rport)
{
	logmsg("%s SA 0x%08x %s -> %s, TCP %u -> %u", what, sa_out.spi,
	       addr_str(c.family, sa_out.src), addr_str(c.family, sa_out.dst),
	       lport, rport);
	logmsg("%s SA 0x%08x %s -> %s, TCP %u -> %u", what, sa_in.spi,
	       addr_str(c.family, sa_in.src), addr_str(c.family, sa_in.dst),
	       rport, lport);
}

/* The tunnel's policies, and for IPv6 the bypass an IKE daemon sets
 * for neighbour discovery (ICMPv6 135 and 136, any address): without
 * it a neighbour advertisement between the hosts would need the tunnel
 * that needs it.  The bypass wins on priority (lower is preferred).
 */
#define PRIO_BYPASS	1000
#define PRIO_TUNNEL	2000
#define NPOLS		7

struct pol {
	unsigned char dir;
	unsigned char nd_type;		/* ICMPv6 type of a bypass, or 0 */
	bool installed;
};

static struct pol pols[NPOLS] = {
	{ .dir = XFRM_POLICY_OUT }, { .dir = XFRM_POLICY_IN },
	{ .dir = XFRM_POLICY_FWD },
	{ .dir = XFRM_POLICY_OUT, .nd_type = 135 },
	{ .dir = XFRM_POLICY_IN, .nd_type = 135 },
	{ .dir = XFRM_POLICY_OUT, .nd_type = 136 },
	{ .dir = XFRM_POLICY_IN, .nd_type = 136 },
};

static const char *const dir_names[] = { "in", "out", "fwd" };

static void pol_selector(const struct pol *p, struct xfrm_selector *sel)
{
	const struct prefix *src = p->dir == XFRM_POLICY_OUT ? &c.lnet :
							       &c.rnet;
	const struct prefix *dst = p->dir == XFRM_POLICY_OUT ? &c.rnet :
							       &c.lnet;

	memset(sel, 0, sizeof(*sel));
	if (p->nd_type) {
		sel->family = AF_INET6;
		sel->proto = IPPROTO_ICMPV6;
		sel->sport = htons(p->nd_type);
		sel->sport_mask = htons(0xffff);
		return;
	}
	sel->family = src->family;
	sel->saddr = src->addr;
	sel->prefixlen_s = src->len;
	sel->daddr = dst->addr;
	sel->prefixlen_d = dst->len;
}

static int pol_add(struct pol *p)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], why[256];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	bool out = p->dir == XFRM_POLICY_OUT;
	struct xfrm_userpolicy_info *pi;
	struct xfrm_user_tmpl t = {
		.family = c.family,
		.mode = c.mode,
		.aalgos = ~0U,
		.ealgos = ~0U,
		.calgos = ~0U,
	};
	int err;

	nlh->nlmsg_type = XFRM_MSG_NEWPOLICY;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	pi = mnl_nlmsg_put_extra_header(nlh, sizeof(*pi));
	pol_selector(p, &pi->sel);
	pi->dir = p->dir;
	pi->action = XFRM_POLICY_ALLOW;
	pi->priority = p->nd_type ? PRIO_BYPASS : PRIO_TUNNEL;
	pi->lft.soft_byte_limit = XFRM_INF;
	pi->lft.hard_byte_limit = XFRM_INF;
	pi->lft.soft_packet_limit = XFRM_INF;
	pi->lft.hard_packet_limit = XFRM_INF;
	if (!p->nd_type) {
		t.id.proto = IPPROTO_ESP;
		t.id.daddr = out ? c.remote : c.local;
		t.saddr = out ? c.local : c.remote;
		mnl_attr_put(nlh, XFRMA_TMPL, sizeof(t), &t);
	}

	err = nl_request(nlh, why, sizeof(why));
	/* Somebody's bypass (another tunnel's, a daemon's): it serves
	 * us as well, and it is not ours to remove.
	 */
	if (err == -EEXIST && p->nd_type)
		return 0;
	if (err == -EEXIST)
		logmsg("a policy %s -> %s (%s) already exists",
		       addr_str(pi->sel.family, &pi->sel.saddr),
		       addr_str(pi->sel.family, &pi->sel.daddr),
		       dir_names[p->dir]);
	else if (err)
		logmsg("adding policy %s: %s", dir_names[p->dir],
		       err_str(err, why));
	else
		p->installed = true;
	return err;
}

static void pol_delete(struct pol *p)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], why[256];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct xfrm_userpolicy_id *id;
	int err;

	if (!p->installed)
		return;
	nlh->nlmsg_type = XFRM_MSG_DELPOLICY;
	id = mnl_nlmsg_put_extra_header(nlh, sizeof(*id));
	pol_selector(p, &id->sel);
	id->dir = p->dir;
	err = nl_request(nlh, why, sizeof(why));
	if (err && err != -ENOENT)
		logmsg("removing policy %s: %s", dir_names[p->dir],
		       err_str(err, why));
	else
		debug("removed policy %s", dir_names[p->dir]);
	p->installed = false;
}

static int pols_install(void)
{
	int i, err;

	for (i = 0; i < NPOLS; i++) {
		if (pols[i].dir == XFRM_POLICY_FWD &&
		    c.mode != XFRM_MODE_TUNNEL)
			continue;
		if (pols[i].nd_type && c.family != AF_INET6)
			continue;
		err = pol_add(&pols[i]);
		if (err)
			return err;
	}
	return 0;
}

static void log_pols(void)
{
	logmsg("added policies %s/%u <-> %s/%u (%s mode)",
	       addr_str(c.lnet.family, &c.lnet.addr), c.lnet.len,
	       addr_str(c.rnet.family, &c.rnet.addr), c.rnet.len,
	       c.mode == XFRM_MODE_TUNNEL ? "tunnel" : "transport");
}

/* Everything we installed, and nothing else. */
static void uninstall(void)
{
	unsigned int i;

	for (i = 0; i < NPOLS; i++)
		pol_delete(&pols[i]);
	sa_delete(&sa_out);
	sa_delete(&sa_in);
}

/* ---- the TCP connection ----------------------------------------------- */

static int sigfd = -1;
static bool stopping;

static socklen_t sockaddr_of(const xfrm_address_t *a, unsigned int port,
			     struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (c.family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr = a->a4;
		return sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, a->a6, sizeof(s6->sin6_addr));
		return sizeof(*s6);
	}
}

static unsigned int port_of(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ?
		     ((const struct sockaddr_in *)ss)->sin_port :
		     ((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* As IKE daemons do: this socket's own packets bypass IPsec policy, or a
 * policy covering the peers would try to encrypt the stream itself.
 */
static int bypass_policy(int fd)
{
	struct xfrm_userpolicy_info pol = {
		.action = XFRM_POLICY_ALLOW,
		.sel.family = c.family,
		.lft = {
			.soft_byte_limit = XFRM_INF,
			.hard_byte_limit = XFRM_INF,
			.soft_packet_limit = XFRM_INF,
			.hard_packet_limit = XFRM_INF,
		},
	};
	int level = c.family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
	int opt = c.family == AF_INET6 ? IPV6_XFRM_POLICY : IP_XFRM_POLICY;

	pol.dir = XFRM_POLICY_IN;
	if (setsockopt(fd, level, opt, &pol, sizeof(pol)))
		return -1;
	pol.dir = XFRM_POLICY_OUT;
	return setsockopt(fd, level, opt, &pol, sizeof(pol));
}

static int attach_ulp(int fd)
{
	if (!setsockopt(fd, IPPROTO_TCP, TCP_ULP, "espintcp",
			sizeof("espintcp")))
		return 0;
	logmsg("attaching the espintcp ULP: %s%s", strerror(errno),
	       errno == ENOENT ? " (is the espintcp module loaded?)" : "");
	return -1;
}

/* ---- waiting, signals -------------------------------------------------- */

static void check_signal(void)
{
	struct signalfd_siginfo si;

	if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
		logmsg("%s: removing the SAs and policies",
		       strsignal(si.ssi_signo));
		stopping = true;
	}
}

/* Wait up to @ms for @events on @fd (none: just wait), or a signal.
 * Returns 1 when @fd is ready, 0 on the timeout, -1 on a signal.
 */
static int wait_fd(int fd, short events, int ms)
{
	struct pollfd p[2] = {
		{ .fd = sigfd, .events = POLLIN },
		{ .fd = fd, .events = events },
	};
	int n;

	do {
		n = poll(p, 2, ms);
	} while (n < 0 && errno == EINTR);
	if (n > 0 && p[0].revents) {
		check_signal();
		if (stopping)
			return -1;
	}
	return n > 0 && p[1].revents ? 1 : 0;
}

/* Close a connection we give up on, with a reset: a close of our own
 * would leave it in TIME_WAIT, and a new connection from a fixed
 * --sport to the same peer would fail for a minute.
 */
static void drop_conn(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/* ---- the TCP connection ------------------------------------------------ */

#define CONNECT_TIMEOUT	10000	/* ms */

/* One connection attempt of the originator, which a signal interrupts.
 * Returns the socket with the ULP attached, or -1 (logged).
 */
static int try_connect(unsigned int *lport)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, err = 0;

	fd = socket(c.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		logmsg("socket: %s", strerror(errno));
		return -1;
	}
	if (bypass_policy(fd)) {
		logmsg("socket bypass policy: %s", strerror(errno));
		goto fail;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	len = sockaddr_of(&c.local, c.sport, &ss);
	if (bind(fd, (struct sockaddr *)&ss, len)) {
		logmsg("bind to %s port %u: %s", addr_str(c.family, &c.local),
		       c.sport, strerror(errno));
		goto fail;
	}
	len = sockaddr_of(&c.remote, c.port, &ss);
	if (connect(fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS) {
		err = errno;
	} else {
		switch (wait_fd(fd, POLLOUT, CONNECT_TIMEOUT)) {
		case -1:
			goto fail;
		case 0:
			err = ETIMEDOUT;
			break;
		default:
			len = sizeof(err);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		}
	}
	if (err) {
		logmsg("connect to %s port %u: %s",
		       addr_str(c.family, &c.remote), c.port, strerror(err));
		goto fail;
	}
	/* Six bytes into an empty send buffer: never short. */
	if (send(fd, PREFIX, PREFIX_LEN, MSG_NOSIGNAL) != PREFIX_LEN) {
		logmsg("writing the stream prefix: %s", strerror(errno));
		goto fail;
	}
	if (attach_ulp(fd))
		goto fail;
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*lport = port_of(&ss);
	logmsg("connected to %s port %u from port %u",
	       addr_str(c.family, &c.remote), c.port, *lport);
	return fd;
fail:
	drop_conn(fd);
	return -1;
}

static int listen_socket(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_of(&c.local, c.port, &ss);
	int fd, one = 1;

	fd = socket(c.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bypass_policy(fd)) {
		logmsg("listening socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 4)) {
		logmsg("listening on %s port %u: %s",
		       addr_str(c.family, &c.local), c.port, strerror(errno));
		close(fd);
		return -1;
	}
	logmsg("listening on %s port %u", addr_str(c.family, &c.local),
	       c.port);
	return fd;
}

/* Read the stream prefix within 10 seconds (a signal interrupts).
 * Returns 1 if it is right, 0 if it is not, -1 on a timeout, the
 * peer's close, an error or a signal.
 */
static int read_prefix(int fd)
{
	char pfx[PREFIX_LEN];
	size_t got = 0;
	time_t end = time(NULL) + 10;

	while (got < PREFIX_LEN) {
		ssize_t n;

		if (wait_fd(fd, POLLIN, 1000 * (end - time(NULL))) <= 0)
			return -1;
		n = recv(fd, pfx + got, PREFIX_LEN - got, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			return -1;
		got += n;
	}
	return !memcmp(pfx, PREFIX, PREFIX_LEN);
}

/* A connection on the responder's socket: from the peer, with the right
 * prefix, the ULP attached.  Returns the socket, -1 for none (nothing
 * to accept, or a connection we closed), or -2 for a wrong prefix.
 */
static int accept_peer(int lfd, unsigned int *rport)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	xfrm_address_t from;
	int fd, ok;

	fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	if (fd < 0) {
		/* Out of descriptors or memory: do not spin on it. */
		if (errno != EAGAIN && errno != ECONNABORTED &&
		    errno != EINTR) {
			logmsg("accept: %s", strerror(errno));
			wait_fd(-1, 0, 1000);
		}
		return -1;
	}
	memset(&from, 0, sizeof(from));
	if (ss.ss_family == AF_INET)
		from.a4 = ((struct sockaddr_in *)&ss)->sin_addr.s_addr;
	else
		memcpy(from.a6, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
	*rport = port_of(&ss);
	if (ss.ss_family != c.family || memcmp(&from, &c.remote, sizeof(from))) {
		logmsg("closed a connection from %s port %u: not the peer",
		       addr_str(ss.ss_family, &from), *rport);
		drop_conn(fd);
		return -1;
	}
	ok = read_prefix(fd);
	if (ok <= 0) {
		if (!stopping)
			logmsg("closed the connection from port %u: %s", *rport,
			       ok ? "no stream prefix" :
				    "stream prefix mismatch (not \"" PREFIX "\")");
		drop_conn(fd);
		return ok ? -1 : -2;
	}
	if (attach_ulp(fd)) {
		drop_conn(fd);
		return -1;
	}
	logmsg("accepted the peer's connection from port %u", *rport);
	return fd;
}

/* ---- liveness ----------------------------------------------------------- */

static time_t now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void send_ike(int fd, const char *text)
{
	char msg[MARKER_LEN + 64] = { 0 };
	size_t len = strlen(text);

	/* The ULP takes no flag but MSG_DONTWAIT (SIGPIPE is ignored). */
	memcpy(msg + MARKER_LEN, text, len);
	if (send(fd, msg, MARKER_LEN + len, MSG_DONTWAIT) < 0 &&
	    errno != EAGAIN)
		logmsg("sending an echo: %s", strerror(errno));
}

/* Returns false once the connection is gone. */
static bool read_ike(int fd, time_t *seen)
{
	char msg[65536], text[80];
	ssize_t n;

	n = recv(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0) {
		logmsg("connection lost: %s", n ? strerror(errno) :
						   "closed by the peer");
		return false;
	}
	msg[n] = '\0';
	if (n <= MARKER_LEN)
		return true;
	if (!strncmp(msg + MARKER_LEN, ECHO_REQ, strlen(ECHO_REQ))) {
		snprintf(text, sizeof(text), ECHO_REP "%.20s",
			 msg + MARKER_LEN + strlen(ECHO_REQ));
		send_ike(fd, text);
	} else if (!strncmp(msg + MARKER_LEN, ECHO_REP, strlen(ECHO_REP))) {
		*seen = now();
		debug("echo reply %s", msg + MARKER_LEN + strlen(ECHO_REP));
	} else {
		debug("ignored an IKE message of %zd bytes", n - MARKER_LEN);
	}
	return true;
}

/* ---- main loop ---------------------------------------------------------- */

/* A connection that lasted this long resets the reconnection backoff. */
#define STABLE_SECS	30

/* The SAs and policies go in first, before any connection: a conflict
 * shows at once, and until the tunnel is up its traffic is dropped (no
 * socket for the SA) instead of leaving in the clear.  Each connection
 * then updates the SAs' ports.  The originator waits 1, 2, 4 ... 30 s
 * between connections, unless the last one lasted STABLE_SECS.
 */
static int run(void)
{
	unsigned int lport = c.listen ? c.port : c.sport;
	unsigned int rport = c.listen ? 0 : c.port, echo_n = 0;
	unsigned int backoff = 0;
	time_t seen = 0, next_echo = 0, up = 0;
	int fd = -1, lfd = -1;
	bool current = false;		/* the SAs have fd's ports */
	bool tunnel = false;		/* a connection has been up */

	if (c.listen) {
		lfd = listen_socket();
		if (lfd < 0)
			return 1;
	}
	if (sa_install(false, lport, rport) || pols_install()) {
		if (lfd >= 0)
			close(lfd);
		return 1;
	}
	log_sas("added", lport, rport);
	log_pols();

	while (!stopping) {
		struct pollfd p[3] = {
			{ .fd = sigfd, .events = POLLIN },
			{ .fd = lfd, .events = POLLIN },
			{ .fd = fd, .events = POLLIN },
		};
		int timeout = -1;

		if (fd < 0 && !c.listen) {
			if (backoff) {
				logmsg("connecting again in %u s", backoff);
				if (wait_fd(-1, 0, backoff * 1000) < 0)
					break;
			}
			backoff = backoff ? 2 * backoff : 1;
			if (backoff > BACKOFF_MAX)
				backoff = BACKOFF_MAX;
			fd = try_connect(&lport);
			if (fd < 0)
				continue;
			p[2].fd = fd;
		}
		if (fd >= 0 && !current) {
			if (sa_install(true, lport, rport))
				break;
			log_sas("updated", lport, rport);
			current = tunnel = true;
			seen = next_echo = up = now();
		}

		if (fd >= 0 && c.echo) {
			time_t t = now(), wake;

			if (t - seen >= (time_t)c.dead) {
				logmsg("the peer is dead: no echo reply for %u s",
				       c.dead);
				drop_conn(fd);
				fd = -1;
				current = false;
				continue;
			}
			if (t >= next_echo) {
				char text[40];

				snprintf(text, sizeof(text), ECHO_REQ "%u",
					 ++echo_n);
				send_ike(fd, text);
				next_echo = t + c.echo;
			}
			wake = next_echo < seen + (time_t)c.dead ?
			       next_echo : seen + (time_t)c.dead;
			timeout = (wake - t) * 1000;
		}

		if (poll(p, 3, timeout) < 0) {
			if (errno == EINTR)
				continue;
			logmsg("poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents)
			check_signal();
		if (stopping)
			break;
		if (p[2].revents && !read_ike(fd, &seen)) {
			close(fd);
			fd = -1;
			current = false;
			if (now() - up >= STABLE_SECS)
				backoff = 0;
			if (c.listen)
				logmsg("waiting for the peer to connect again");
			continue;
		}
		if (p[1].revents) {
			unsigned int port;
			int nfd = accept_peer(lfd, &port);

			/* Before the first tunnel, a stream that is not
			 * RFC 9329 is a configuration error, not noise.
			 */
			if (nfd == -2 && !tunnel) {
				stopping = false;
				break;
			}
			if (nfd >= 0) {
				if (fd >= 0) {
					logmsg("the peer connected again: closing its old connection");
					drop_conn(fd);
				}
				fd = nfd;
				rport = port;
				current = false;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	if (lfd >= 0)
		close(lfd);
	return stopping ? 0 : 1;
}

/* ---- set-up ------------------------------------------------------------- */

static void enter_netns(const char *name)
{
	if (espintcp_enter_netns(name))
		bad("--netns %s: %s", name, errno == ENOENT ?
		    "no such network namespace" : strerror(errno));
}

/* Is there an espintcp ULP to attach, and thus ESP-in-TCP SAs? */
static void check_module(void)
{
	if (espintcp_ulp_available())
		return;
	logmsg("the espintcp module is not loaded (no espintcp in tcp_available_ulp): load it with 'modprobe espintcp'");
	exit(1);
}

int main(int argc, char **argv)
{
	int one = 1, opt, idx = 0, rc;
	sigset_t sigs;

	/* The role comes first, or from the configuration ("role"). */
	optind = 1;
	if (argc > 1 && argv[1][0] != '-') {
		set_option(OPT_ROLE, "role", argv[1], 0);
		optind = 2;
	}
	while ((opt = getopt_long(argc, argv, "", options, &idx)) != -1)
		set_option(opt, opt == '?' ? "" : options[idx].name, optarg,
			   0);
	if (optind < argc)
		bad("unexpected argument '%s'", argv[optind]);
	if (!c.role)
		bad("'listen' or 'connect' is required (try --help)");
	c.listen = c.role == 'l';
	check_conf();
	sa_out.spi = c.spi_out;
	sa_in.spi = c.spi_in;

	/* tcp_available_ulp is the initial namespace's: read it first. */
	check_module();
	if (c.netns)
		enter_netns(c.netns);

	nl = mnl_socket_open(NETLINK_XFRM);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		logmsg("XFRM netlink: %s", strerror(errno));
		return 1;
	}
	mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sigfd < 0) {
		logmsg("signalfd: %s", strerror(errno));
		return 1;
	}

	rc = run();
	uninstall();
	mnl_socket_close(nl);
	if (!rc)
		logmsg("stopped");
	return rc;
}
