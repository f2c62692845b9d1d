// SPDX-License-Identifier: GPL-2.0-only
/*
 * ESP for SAs encapsulated in TCP ("encap espintcp").
 *
 * Without CONFIG_INET_ESPINTCP, esp4 and esp6 refuse such SAs and cannot
 * send them.  We take the place of the ESP xfrm type of each family and
 * forward every callback to the kernel's own ESP type, except:
 *
 * - init_state of a TCP SA: the kernel's, with the encapsulation hidden
 *   from it (the SA is not visible to anyone else yet), plus the two
 *   bytes of the length field in the header;
 * - output of a TCP SA: ours, on the AEAD transform the kernel's ESP set
 *   up for the SA, then the frame goes to the SA's TCP socket.
 *
 * Input stays the kernel's: esp4/esp6 handle a TCP-encapsulated packet
 * (its source port, km_new_mapping) whatever the configuration.
 */

#include <linux/module.h>
#include <linux/scatterlist.h>
#include <crypto/aead.h>
#include <net/esp.h>
#include <net/inet_hashtables.h>
#include <net/inet6_hashtables.h>
#include <net/ip.h>
#include <net/l3mdev.h>
#include <net/tcp.h>
#include <net/xfrm.h>

#include "espintcp.h"

struct espintcp_esp {
	unsigned short family;
	const char *module;
	const struct xfrm_type *orig;	/* the kernel's ESP, referenced */
	struct xfrm_type type;		/* ours, registered in its place */
	bool swapped;			/* ours is the registered one */
};

static struct espintcp_esp espintcp_esp4 = {
	.family = AF_INET,
	.module = "esp4",
};

static struct espintcp_esp espintcp_esp6 = {
	.family = AF_INET6,
	.module = "esp6",
};

/* Output keeps its crypto scratch next to XFRM's own control block. */
struct espintcp_esp_cb {
	struct xfrm_skb_cb xfrm;
	void *tmp;
};

#define ESPINTCP_ESP_CB(skb)	((struct espintcp_esp_cb *)&((skb)->cb[0]))

static const struct xfrm_type *espintcp_orig(const struct xfrm_state *x)
{
	return x->props.family == AF_INET6 ? espintcp_esp6.orig :
					     espintcp_esp4.orig;
}

static bool espintcp_is_tcp_sa(const struct xfrm_state *x)
{
	return x->encap && x->encap->encap_type == TCP_ENCAP_ESPINTCP;
}

static int espintcp_esp_init_state(struct xfrm_state *x,
				   struct netlink_ext_ack *extack)
{
	const struct xfrm_type *orig = espintcp_orig(x);
	struct xfrm_encap_tmpl *encap = x->encap;
	int err;

	if (!espintcp_is_tcp_sa(x))
		return orig->init_state(x, extack);

	if (!espintcp_may_configure()) {
		NL_SET_ERR_MSG(extack,
			       "espintcp: TCP encapsulation needs CAP_NET_ADMIN in the initial user namespace (module parameter allow_userns)");
		return -EPERM;
	}

	/* The state is being built and not yet in any table: nobody else
	 * looks at x->encap while the kernel's ESP sets up the transform
	 * as for a plain SA.
	 */
	x->encap = NULL;
	err = orig->init_state(x, extack);
	x->encap = encap;
	if (err)
		return err;

	x->props.header_len += ESPINTCP_HDR_LEN;
	return 0;
}

/* The established socket from @x's peer and encap dport to its local
 * address and encap sport, matched on devices @dif and @sdif.
 */
static struct sock *espintcp_esp_lookup(struct xfrm_state *x, __be16 sport,
					__be16 dport, int dif, int sdif)
{
	struct net *net = xs_net(x);
	struct inet_hashinfo *hinfo = net->ipv4.tcp_death_row.hashinfo;

	if (x->props.family == AF_INET6)
		return __inet6_lookup_established(net, hinfo, &x->id.daddr.in6,
						  dport, &x->props.saddr.in6,
						  ntohs(sport), dif, sdif);
	return __inet_lookup_established(net, hinfo, x->id.daddr.a4, dport,
					 x->props.saddr.a4, ntohs(sport), dif,
					 sdif);
}

/* The socket that carries the ULP for this SA, on the device the packet
 * leaves by: a socket bound to a device (or to a VRF) matches only
 * there, and upstream, looking up with no device, never finds one.  An
 * unbound socket whose packets leave by a VRF's device matches only with
 * l3mdev_accept, so it is looked for without the device as well.  The
 * bundle's device is the outer route's (never NULL: blackhole_netdev
 * once unregistered).  Returns the socket with a reference, or NULL.
 * Under RCU.
 */
static struct sock *espintcp_esp_find_sk(struct xfrm_state *x,
					 const struct sk_buff *skb)
{
	const struct net_device *dev = skb_dst(skb)->dev;
	int sdif = l3mdev_master_ifindex_rcu(dev);
	__be16 sport, dport;
	struct sock *sk;

	/* xfrm_state_update() rewrites the ports under x->lock. */
	spin_lock_bh(&x->lock);
	sport = x->encap->encap_sport;
	dport = x->encap->encap_dport;
	spin_unlock_bh(&x->lock);

	sk = espintcp_esp_lookup(x, sport, dport, dev->ifindex, sdif);
	if (!sk && sdif)
		sk = espintcp_esp_lookup(x, sport, dport, 0, 0);
	if (!sk)
		return NULL;
	if (!sk_fullsock(sk) || !espintcp_is_ulp_sock(sk)) {
		sock_gen_put(sk);
		return NULL;
	}
	return sk;
}

/* From the xfrm_trans tasklet: out of the XFRM output path and any socket
 * lock it may run under, write the frame into the SA's stream.
 */
static int espintcp_esp_xmit(struct net *net, struct sock *unused,
			     struct sk_buff *skb)
{
	struct xfrm_state *x = skb_dst(skb)->xfrm;
	struct sock *sk;

	rcu_read_lock();
	sk = espintcp_esp_find_sk(x, skb);
	if (sk) {
		espintcp_xmit_esp(sk, skb);
		sock_put(sk);
	} else {
		espintcp_net_add(net, ESPINTCP_MIB_OUT_NO_SOCKET, 1);
		XFRM_INC_STATS(net, LINUX_MIB_XFRMOUTNOSTATES);
		kfree_skb(skb);
	}
	rcu_read_unlock();
	return 0;
}

/* Encrypted: queue the frame for the socket. */
static void espintcp_esp_output_finish(struct xfrm_state *x,
				       struct sk_buff *skb)
{
	struct net *net = xs_net(x);
	int err;

	local_bh_disable();
	err = xfrm_trans_queue_net(net, skb, espintcp_esp_xmit);
	local_bh_enable();
	if (err) {
		espintcp_net_add(net, ESPINTCP_MIB_OUT_ERROR, 1);
		XFRM_INC_STATS(net, LINUX_MIB_XFRMOUTERROR);
		kfree_skb(skb);
	}
}

static ESPINTCP_CRYPTO_DONE(espintcp_esp_output_done)
{
	struct sk_buff *skb = ESPINTCP_CRYPTO_DATA();
	struct xfrm_state *x = skb_dst(skb)->xfrm;

	kfree(ESPINTCP_ESP_CB(skb)->tmp);
	if (err) {
		espintcp_net_add(xs_net(x), ESPINTCP_MIB_OUT_ERROR, 1);
		XFRM_INC_STATS(xs_net(x), LINUX_MIB_XFRMOUTSTATEPROTOERROR);
		kfree_skb(skb);
		return;
	}
	espintcp_esp_output_finish(x, skb);
}

/* Scratch for one encryption: associated data, IV, request, sg list. */
static void *espintcp_esp_tmp(struct crypto_aead *aead, unsigned int nsg,
			      __be32 **assoc, u8 **iv,
			      struct aead_request **req,
			      struct scatterlist **sg)
{
	unsigned int ivlen = crypto_aead_ivsize(aead);
	size_t len;
	void *tmp;

	len = 3 * sizeof(__be32) + crypto_aead_alignmask(aead) + ivlen +
	      crypto_tfm_ctx_alignment() + sizeof(**req) +
	      crypto_aead_reqsize(aead) + __alignof__(struct scatterlist) +
	      nsg * sizeof(**sg);
	tmp = kmalloc(len, GFP_ATOMIC);
	if (!tmp)
		return NULL;

	*assoc = tmp;
	*iv = PTR_ALIGN((u8 *)tmp + 3 * sizeof(__be32),
			crypto_aead_alignmask(aead) + 1);
	*req = PTR_ALIGN((void *)(*iv + ivlen), crypto_tfm_ctx_alignment());
	*sg = PTR_ALIGN((void *)((u8 *)(*req + 1) + crypto_aead_reqsize(aead)),
			__alignof__(struct scatterlist));
	return tmp;
}

/* The ESP trailer (RFC 4303 2.4): TFC padding (zeros), padding 1, 2,
 * 3, ..., its length, the next header.
 */
static void espintcp_esp_fill_trailer(u8 *tail, unsigned int tfclen,
				      unsigned int plen, u8 proto)
{
	unsigned int i;

	memset(tail, 0, tfclen);
	tail += tfclen;
	for (i = 0; i < plen - 2; i++)
		tail[i] = i + 1;
	tail[plen - 2] = plen - 2;
	tail[plen - 1] = proto;
}

/* Where a frame starts in a page fragment: its length field takes two
 * bytes, so that the ESP header, the IV and the payload that follow
 * stay 8-byte aligned for the crypto.
 */
#define ESPINTCP_FRAG_OFF	(8 - ESPINTCP_HDR_LEN)

/* @len bytes of the SA's page fragment, with a reference, or NULL.  The
 * kernel's ESP keeps x->xfrag for its own output, which never runs for
 * a TCP SA, and XFRM releases the page with the state.  Every user of a
 * region (TCP, a retransmission, a tap) holds a page reference, and the
 * refill starts a page over only when ours is the last one: a region is
 * never written twice.  Sizes up to a page only: the refill guarantees
 * no more (one larger request overflowed it in the kernel's ESP,
 * CVE-2022-27666), which is checked all the same.
 */
static struct page *espintcp_esp_frag(struct xfrm_state *x, unsigned int len,
				      unsigned int *off)
{
	struct page_frag *pfrag = &x->xfrag;
	struct page *page = NULL;

	len += ESPINTCP_FRAG_OFF;
	if (len > PAGE_SIZE)
		return NULL;

	spin_lock_bh(&x->lock);
	if (skb_page_frag_refill(len, pfrag, GFP_ATOMIC) &&
	    pfrag->offset + len <= pfrag->size) {
		page = pfrag->page;
		get_page(page);
		*off = pfrag->offset + ESPINTCP_FRAG_OFF;
		pfrag->offset += ALIGN(len, L1_CACHE_BYTES);
	}
	spin_unlock_bh(&x->lock);
	return page;
}

/* Build a frame of @flen bytes, its payload at @poff, in a page
 * fragment of the SA's: the skb's payload (from skb->data) is copied
 * there once, whatever it is made of, and only read: a clone of a TCP
 * segment, page-cache pages, a frag_list, a zerocopy sender's pages.
 * The skb then keeps its headers up to the transport header, and the
 * frame as its one page fragment, which the encryption works on in
 * place and TCP takes by reference.  Without this, the frame would be
 * made linear (skb_cow_data() pulls every page fragment into the head)
 * and TCP would copy it once more.  Returns 1 (the frame's scatterlist
 * entries), 0 when no page fragment was to be had (build it in the skb
 * instead), or an error.
 */
static int espintcp_esp_to_page(struct xfrm_state *x, struct sk_buff *skb,
				unsigned int flen, unsigned int poff,
				unsigned int tfclen, unsigned int plen)
{
	u8 proto = *skb_mac_header(skb);
	unsigned int off;
	struct page *page;
	u8 *frame;
	int err;

	page = espintcp_esp_frag(x, flen, &off);
	if (!page)
		return 0;

	/* A lowmem page: the refill allocates without __GFP_HIGHMEM. */
	frame = (u8 *)page_address(page) + off;
	err = skb_copy_bits(skb, 0, frame + poff, skb->len);
	if (err)
		goto fail;
	espintcp_esp_fill_trailer(frame + poff + skb->len, tfclen, plen,
				  proto);

	/* Drop the payload; the head we write must be ours alone.  Frags
	 * whose references the sender manages (io_uring's registered
	 * buffers) would not be released by the trim, and then the skb
	 * would not release ours either: make them ordinary first.
	 */
	skb_zcopy_downgrade_managed(skb);
	__skb_push(skb, -skb_network_offset(skb));
	err = pskb_trim(skb, skb_transport_offset(skb));
	if (!err)
		err = skb_unclone(skb, GFP_ATOMIC);
	if (err)
		goto fail;
	if (WARN_ON_ONCE(skb_is_nonlinear(skb))) {
		err = -EINVAL;
		goto fail;
	}

	*skb_mac_header(skb) = IPPROTO_ESP;
	skb_fill_page_desc(skb, 0, page, off, flen);
	skb->len += flen;
	skb->data_len += flen;
	/* A local sender's skb stays charged as it was (its socket's
	 * write memory was counted with this truesize); a forwarded
	 * one, which the trim shrank to its head, counts the frame.
	 */
	if (!skb->sk)
		skb->truesize += flen;
	return 1;

fail:
	put_page(page);
	return err;
}

/* Build a frame in the skb itself, when it is too large for a page or
 * no page fragment was to be had: made writable (skb_cow_data() copies
 * what is shared), the trailer appended.
 * Returns the number of scatterlist entries the frame needs.
 */
static int espintcp_esp_in_skb(struct sk_buff *skb, unsigned int tfclen,
			       unsigned int plen, unsigned int alen)
{
	struct sk_buff *trailer;
	int nfrags;
	u8 proto;

	nfrags = skb_cow_data(skb, tfclen + plen + alen, &trailer);
	if (nfrags < 0)
		return nfrags;

	proto = *skb_mac_header(skb);
	*skb_mac_header(skb) = IPPROTO_ESP;
	espintcp_esp_fill_trailer(pskb_put(skb, trailer, tfclen + plen + alen),
				  tfclen, plen, proto);
	__skb_push(skb, -skb_network_offset(skb));
	return nfrags;
}

/* ESP (RFC 4303) for a TCP SA.  The mode's output left the skb as:
 * network header (outer IP header), then header_len bytes reserved at
 * the transport header for [length (2)][SPI, sequence (8)][IV], then
 * the payload at skb->data; the IP protocol byte is at the mac header.
 * The frame is [length][SPI, sequence][IV][payload, TFC padding,
 * padding, pad length, next header][ICV]; we encrypt from the IV to
 * the ICV with the SPI and sequence number (and its high half, for ESN)
 * as associated data.  Once built, the frame is everything from the
 * transport header to the end of the skb, and the skb data starts at
 * the network header.
 */
static int espintcp_esp_output_tcp(struct xfrm_state *x, struct sk_buff *skb)
{
	struct crypto_aead *aead = x->data;
	unsigned int alen = crypto_aead_authsize(aead);
	unsigned int ivlen = crypto_aead_ivsize(aead);
	unsigned int blksize = ALIGN(crypto_aead_blocksize(aead), 4);
	bool esn = x->props.flags & XFRM_STATE_ESN;
	u32 seqlo = XFRM_SKB_CB(skb)->seq.output.low;
	u32 seqhi = XFRM_SKB_CB(skb)->seq.output.hi;
	unsigned int clen, plen, flen, poff, tfclen = 0, n;
	struct {
		__be16 len;
		__be32 spi;
		__be32 seq_no;
	} __packed hdr;
	struct aead_request *req;
	struct scatterlist *sg;
	int nfrags, err;
	__be32 *assoc;
	__be64 seq64;
	void *tmp;
	u8 *iv;

	/* Traffic flow confidentiality (RFC 4303 2.4, "tfcpad"): zeros
	 * after the payload, up to the SA's length or the path MTU, as
	 * the kernel's ESP does.
	 */
	if (x->tfcpad) {
		struct xfrm_dst *dst = (struct xfrm_dst *)skb_dst(skb);
		u32 padto = min(x->tfcpad,
				xfrm_state_mtu(x, dst->child_mtu_cached));
		/* And no more than a frame holds. */
		u32 room = ESPINTCP_MAX_FRAME - sizeof(hdr) - ivlen - alen;

		padto = min(padto, rounddown(room, blksize) - 2);
		if (skb->len < padto)
			tfclen = padto - skb->len;
	}

	clen = ALIGN(skb->len + tfclen + 2, blksize);
	plen = clen - skb->len - tfclen;
	poff = sizeof(hdr) + ivlen;
	flen = poff + clen + alen;
	if (flen > ESPINTCP_MAX_FRAME)
		return -EMSGSIZE;

	nfrags = espintcp_esp_to_page(x, skb, flen, poff, tfclen, plen);
	if (!nfrags)
		nfrags = espintcp_esp_in_skb(skb, tfclen, plen, alen);
	if (nfrags < 0)
		return nfrags;

	hdr.len = htons(flen);
	hdr.spi = x->id.spi;
	hdr.seq_no = htonl(seqlo);
	err = skb_store_bits(skb, skb_transport_offset(skb), &hdr,
			     sizeof(hdr));
	if (err)
		return err;

	tmp = espintcp_esp_tmp(aead, nfrags + 1, &assoc, &iv, &req, &sg);
	if (!tmp)
		return -ENOMEM;

	n = 0;
	assoc[n++] = x->id.spi;
	if (esn)
		assoc[n++] = htonl(seqhi);
	assoc[n++] = htonl(seqlo);

	/* The IV generator (seqiv, echainiv) takes the 64-bit sequence
	 * number, right-aligned.
	 */
	seq64 = cpu_to_be64(((u64)seqhi << 32) | seqlo);
	memset(iv, 0, ivlen);
	memcpy(iv + ivlen - min_t(unsigned int, ivlen, 8),
	       (u8 *)&seq64 + 8 - min_t(unsigned int, ivlen, 8),
	       min_t(unsigned int, ivlen, 8));

	sg_init_table(sg, nfrags + 1);
	sg_set_buf(sg, assoc, n * sizeof(__be32));
	err = skb_to_sgvec(skb, sg + 1,
			   skb_transport_offset(skb) + poff - ivlen,
			   ivlen + clen + alen);
	if (unlikely(err < 0)) {
		kfree(tmp);
		return err;
	}

	aead_request_set_tfm(req, aead);
	aead_request_set_callback(req, 0, espintcp_esp_output_done, skb);
	aead_request_set_crypt(req, sg, sg, ivlen + clen, iv);
	aead_request_set_ad(req, n * sizeof(__be32));
	ESPINTCP_ESP_CB(skb)->tmp = tmp;

	err = crypto_aead_encrypt(req);
	if (err == -EINPROGRESS)
		return -EINPROGRESS;	/* the callback takes the skb */
	kfree(tmp);
	if (err)
		return err;

	espintcp_esp_output_finish(x, skb);
	/* Consumed: xfrm_output treats this as "not coming back". */
	return -EINPROGRESS;
}

static int espintcp_esp_output(struct xfrm_state *x, struct sk_buff *skb)
{
	int err;

	if (!espintcp_is_tcp_sa(x))
		return espintcp_orig(x)->output(x, skb);
	err = espintcp_esp_output_tcp(x, skb);
	/* XFRM frees the skb and counts XfrmOutStateProtoError. */
	if (err != -EINPROGRESS)
		espintcp_net_add(xs_net(x), ESPINTCP_MIB_OUT_ERROR, 1);
	return err;
}

/* Take a reference to the kernel's ESP type for @e's family.  We never
 * load esp4 or esp6 ourselves: module init must not wait on user space
 * (MODULE_SOFTDEP has modprobe load them first).
 */
static bool espintcp_esp_find(struct espintcp_esp *e)
{
	struct xfrm_state_afinfo *afinfo;
	const struct xfrm_type *orig;

	rcu_read_lock();
	afinfo = xfrm_state_afinfo_get_rcu(e->family);
	orig = afinfo ? READ_ONCE(afinfo->type_esp) : NULL;
	if (orig && !try_module_get(orig->owner))
		orig = NULL;
	rcu_read_unlock();

	e->orig = orig;
	return orig;
}

static void espintcp_esp_put(struct espintcp_esp *e)
{
	if (e->orig)
		module_put(e->orig->owner);
	e->orig = NULL;
}

/* Put our type in the place of the kernel's.  Called once nothing can
 * fail any more: from here on an SA may hold our module.  The swap
 * itself fails only if somebody else registered an ESP type in the
 * instant between the two calls (the kernel's cannot go away, we hold
 * its module); then the family simply has no ESP-in-TCP.
 */
static void espintcp_esp_swap(struct espintcp_esp *e)
{
	if (!e->orig)
		return;

	e->type = *e->orig;
	e->type.owner = THIS_MODULE;
	e->type.init_state = espintcp_esp_init_state;
	e->type.output = espintcp_esp_output;

	xfrm_unregister_type(e->orig, e->family);
	if (!xfrm_register_type(&e->type, e->family)) {
		e->swapped = true;
		return;
	}
	pr_err("%s: ESP type taken while we replaced it: no ESP-in-TCP SAs for it\n",
	       e->module);
	espintcp_esp_put(e);
}

static void espintcp_esp_restore(struct espintcp_esp *e)
{
	if (e->swapped) {
		/* Every SA that used our type is gone (each held the
		 * module).
		 */
		xfrm_unregister_type(&e->type, e->family);
		if (xfrm_register_type(e->orig, e->family))
			pr_err("could not give %s back its ESP type\n",
			       e->module);
		e->swapped = false;
	}
	espintcp_esp_put(e);
}

/* Before anything is published: the kernel's ESP types.  IPv4's is
 * required; IPv6's is optional (ipv6.disable=1, esp6 blacklisted).
 */
int espintcp_esp_init(void)
{
	BUILD_BUG_ON(sizeof(struct espintcp_esp_cb) >
		     sizeof_field(struct sk_buff, cb));

	if (!espintcp_esp_find(&espintcp_esp4)) {
		pr_err("esp4 is not loaded: load espintcp with modprobe, which loads esp4 first, or modprobe esp4\n");
		return -ENOPROTOOPT;
	}
	if (!espintcp_esp_find(&espintcp_esp6))
		pr_info("no ESP for IPv6 (esp6 not loaded, or IPv6 disabled): ESP-in-TCP over IPv4 only\n");
	return 0;
}

/* After the ULP is registered: cannot fail. */
void espintcp_esp_publish(void)
{
	espintcp_esp_swap(&espintcp_esp4);
	espintcp_esp_swap(&espintcp_esp6);
}

void espintcp_esp_exit(void)
{
	espintcp_esp_restore(&espintcp_esp6);
	espintcp_esp_restore(&espintcp_esp4);
}
