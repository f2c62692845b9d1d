// SPDX-License-Identifier: GPL-2.0-only
/*
 * Selftest helper: open a loopback TCP pair in the current network
 * namespace, attach the espintcp ULP to both ends, print "ready" and
 * hold the sockets until standard input closes or a signal ends us.
 *
 * usage: ulp_hold [4|6]
 */

#include <stdio.h>
#include <stdlib.h>

#include "lib/espintcp_test.h"

int main(int argc, char **argv)
{
	int family = argc > 1 && !strcmp(argv[1], "6") ? AF_INET6 : AF_INET;
	int c, s;
	char b;

	if (espintcp_test_pair(family, &c, &s)) {
		perror("ulp_hold: tcp pair");
		return 1;
	}
	if (espintcp_test_attach(c) || espintcp_test_attach(s)) {
		perror("ulp_hold: TCP_ULP espintcp");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (read(0, &b, 1) > 0)
		;
	return 0;
}
