/* The image, build and container commands live in libvirtus-store.so, loaded here only when one of them runs:
 * the libraries they need (libarchive, nettle, libnftables and theirs) would otherwise be mapped by every
 * `virtus vm run` (measured: ~15 ms of start-up on a nested host). Found next to the program (the build tree)
 * or in <prefix>/lib/virtus (make install). */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>

#include "cli/cli.h"
#include "lib/store_so.h"

#define EXIT_STORE_MISSING 125

typedef int (*store_cmd_fn)(const struct cli_globals *g, int argc, char **argv);

int store_command(const char *symbol, const struct cli_globals *g, int argc, char **argv)
{
	char why[PATH_MAX * 2 + 128];
	void *h = store_so_open(why, sizeof(why));
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
