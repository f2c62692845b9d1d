/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What espintcp-tunnel and espintcp-stat both need.
 */
#ifndef ESPINTCP_TOOLS_COMMON_H
#define ESPINTCP_TOOLS_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Is an espintcp ULP registered (our module, or a kernel's own)?  The
 * list is a sysctl of the initial network namespace only: call this
 * before entering another.
 */
static inline bool espintcp_ulp_available(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
	char ulps[256] = "", *tok, *save;

	if (f) {
		if (!fgets(ulps, sizeof(ulps), f))
			ulps[0] = '\0';
		fclose(f);
	}
	for (tok = strtok_r(ulps, " \n", &save); tok;
	     tok = strtok_r(NULL, " \n", &save))
		if (!strcmp(tok, "espintcp"))
			return true;
	return false;
}

/* Move to the network namespace @name of 'ip netns add'.  Returns 0, or
 * -1 with errno set (EINVAL for a name that is a path).
 */
static inline int espintcp_enter_netns(const char *name)
{
	char path[PATH_MAX];
	int fd, err;

	if (strchr(name, '/')) {
		errno = EINVAL;
		return -1;
	}
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	err = setns(fd, CLONE_NEWNET);
	close(fd);
	return err;
}

#endif /* ESPINTCP_TOOLS_COMMON_H */
