#include "lib/store_so.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* dir of /proc/self/exe into buf; false if it cannot be read. */
static bool program_dir(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char *slash = strrchr(buf, '/');
	if (!slash)
		return false;
	*slash = '\0';
	return true;
}

void *store_so_open(char *why, size_t size)
{
	char dir[PATH_MAX];
	if (!program_dir(dir, sizeof(dir))) {
		snprintf(why, size, "%s", STORE_SO);
		return NULL;
	}
	static const char *const places[] = { "%s/" STORE_SO, "%s/../lib/virtus/" STORE_SO };
	for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
		char path[PATH_MAX + 64];
		snprintf(path, sizeof(path), places[i], dir);
		if (access(path, R_OK) < 0)
			continue;
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!h)
			snprintf(why, size, "%s", dlerror());
		return h;
	}
	snprintf(why, size, "%s/%s or %s/../lib/virtus/%s: not found", dir, STORE_SO, dir, STORE_SO);
	return NULL;
}
