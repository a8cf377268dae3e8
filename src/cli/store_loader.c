/* The image, build and container commands live in libvirtus-store.so, loaded here only when one of them runs:
 * the libraries they need (libarchive, libcrypto, libnftables and theirs) would otherwise be mapped by every
 * `virtus vm run` (measured: ~15 ms of start-up on a nested host). Found next to the program (the build tree)
 * or in <prefix>/lib/virtus (make install). */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

#define STORE_SO "libvirtus-store.so"
#define EXIT_STORE_MISSING 125

typedef int (*store_cmd_fn)(const struct cli_globals *g, int argc, char **argv);

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

static void *open_store_library(char *tried, size_t size)
{
	char dir[PATH_MAX];
	if (!program_dir(dir, sizeof(dir))) {
		snprintf(tried, size, "%s", STORE_SO);
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
			snprintf(tried, size, "%s", dlerror());
		return h;
	}
	snprintf(tried, size, "%s/%s or %s/../lib/virtus/%s: not found", dir, STORE_SO, dir, STORE_SO);
	return NULL;
}

int store_command(const char *symbol, const struct cli_globals *g, int argc, char **argv)
{
	char why[PATH_MAX * 2 + 128];
	void *h = open_store_library(why, sizeof(why));
	if (!h) {
		fprintf(stderr, "virtus: the image and container commands need %s (%s); reinstall virtus\n", STORE_SO,
			why);
		return EXIT_STORE_MISSING;
	}
	store_cmd_fn fn;
	*(void **)&fn = dlsym(h, symbol);
	if (!fn) {
		fprintf(stderr, "virtus: %s lacks %s: it does not match this virtus; reinstall virtus\n", STORE_SO,
			symbol);
		return EXIT_STORE_MISSING;
	}
	return fn(g, argc, argv); /* the library stays loaded: the command may fork a monitor that uses it */
}
