/* libvirtus-store.so, the shared object with the image, container and VM-isolation code: found next to the
 * running program (the build tree) or in <prefix>/lib/virtus (make install). `virtus` loads it for its store
 * commands, `virtus-runtime` for VM-isolated containers only, so neither maps its libraries otherwise. */
#ifndef VIRTUS_LIB_STORE_SO_H
#define VIRTUS_LIB_STORE_SO_H

#include <stddef.h>

#define STORE_SO "libvirtus-store.so"

/* dlopen() it (RTLD_NOW | RTLD_LOCAL; it stays loaded); NULL with why it failed in why. */
void *store_so_open(char *why, size_t size);

#endif
