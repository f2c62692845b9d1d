// SPDX-License-Identifier: GPL-2.0-only
/*
 * send_zc: send UDP datagrams with io_uring's zerocopy send from a
 * registered buffer (IORING_OP_SEND_ZC, IORING_RECVSEND_FIXED_BUF): the
 * skbs carry page fragments whose references io_uring manages
 * (SKBFL_MANAGED_FRAG_REFS), which whoever rebuilds such an skb must
 * turn into ordinary ones first.
 *
 * usage: send_zc ADDR PORT COUNT SIZE
 * Prints "sent N" and exits 0; exits 4 (the kselftest skip code) when
 * io_uring or its zerocopy send is not available.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SKIP	4
#define BATCH	32

int main(int argc, char **argv)
{
	struct addrinfo hints = {
		.ai_socktype = SOCK_DGRAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	}, *ai;
	unsigned long count, size, sent = 0, done = 0;
	struct io_uring ring;
	struct iovec iov;
	int fd, err, pending = 0;

	if (argc != 5) {
		fprintf(stderr, "usage: send_zc ADDR PORT COUNT SIZE\n");
		return 2;
	}
	count = strtoul(argv[3], NULL, 0);
	size = strtoul(argv[4], NULL, 0);
	if (getaddrinfo(argv[1], argv[2], &hints, &ai)) {
		fprintf(stderr, "send_zc: bad address\n");
		return 2;
	}
	fd = socket(ai->ai_family, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		perror("send_zc: socket");
		return 1;
	}
	err = io_uring_queue_init(2 * BATCH, &ring, 0);
	if (err) {
		fprintf(stderr, "send_zc: io_uring: %s\n", strerror(-err));
		return -err == ENOSYS || -err == EPERM ? SKIP : 1;
	}
	iov.iov_len = size;
	iov.iov_base = aligned_alloc(4096, (size + 4095) & ~4095UL);
	if (!iov.iov_base)
		return 1;
	memset(iov.iov_base, 0x5a, size);
	err = io_uring_register_buffers(&ring, &iov, 1);
	if (err) {
		fprintf(stderr, "send_zc: register: %s\n", strerror(-err));
		return 1;
	}

	/* Each send completes twice: the result, then (IORING_CQE_F_MORE
	 * set on the first) a notification once the kernel let go of the
	 * buffer.
	 */
	while (done < count) {
		struct io_uring_cqe *cqe;

		while (sent < count && pending < BATCH) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			if (!sqe)
				break;
			io_uring_prep_send_zc_fixed(sqe, fd, iov.iov_base, size,
						    0, 0, 0);
			sent++;
			pending++;
		}
		io_uring_submit(&ring);
		err = io_uring_wait_cqe(&ring, &cqe);
		if (err) {
			fprintf(stderr, "send_zc: wait: %s\n", strerror(-err));
			return 1;
		}
		if (cqe->flags & IORING_CQE_F_NOTIF) {
			pending--;
		} else {
			if (cqe->res == -EINVAL || cqe->res == -EOPNOTSUPP) {
				fprintf(stderr, "send_zc: no zerocopy send: %s\n",
					strerror(-cqe->res));
				return SKIP;
			}
			/* A datagram the stack dropped is still sent. */
			done++;
			if (!(cqe->flags & IORING_CQE_F_MORE))
				pending--;
		}
		io_uring_cqe_seen(&ring, cqe);
	}
	while (pending > 0) {
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe(&ring, &cqe))
			break;
		if (cqe->flags & IORING_CQE_F_NOTIF)
			pending--;
		io_uring_cqe_seen(&ring, cqe);
	}
	printf("sent %lu\n", done);
	io_uring_queue_exit(&ring);
	close(fd);
	freeaddrinfo(ai);
	return 0;
}
