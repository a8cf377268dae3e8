/* libarchive's entry points, resolved on first use (image/archive_api.h). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/archive_api.h"

static struct vt_archive_api api;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char failure[256];

static void load(void)
{
	void *h = dlopen(VT_ARCHIVE_LIBRARY, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!h) {
		snprintf(failure, sizeof(failure), "%s", dlerror());
		return;
	}
	/* Each slot is a function pointer: dlsym's void * is copied into it bytewise (as POSIX allows). */
#define VT_ARCHIVE_RESOLVE(name)                                                                          \
	do {                                                                                              \
		void *sym = dlsym(h, #name);                                                              \
		if (!sym) {                                                                               \
			snprintf(failure, sizeof(failure), "it has no %s", #name);                        \
			return;                                                                           \
		}                                                                                         \
		memcpy(&api.name, &sym, sizeof(sym));                                                     \
	} while (0);
	VT_ARCHIVE_FUNCS(VT_ARCHIVE_RESOLVE)
#undef VT_ARCHIVE_RESOLVE
}

const struct vt_archive_api *vt_archive(void)
{
	pthread_once(&once, load);
	if (failure[0]) {
		fprintf(stderr, "virtus: reading and writing archives needs %s (Debian package libarchive13): %s\n",
			VT_ARCHIVE_LIBRARY, failure);
		exit(125);
	}
	return &api;
}
