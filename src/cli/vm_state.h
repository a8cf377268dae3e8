/* Where the VMs of this host are found: one directory per VM under the VM run root (default
 * /run/virtus-vms for root, the user's runtime directory for others; $VIRTUS_VM_RUN_DIR overrides), named
 * after the VM. It holds vm.json (the VMM's pid and
 * its sockets), the API socket, and for a detached VM its console socket and logs. The VMM makes it before
 * the VM starts and removes it when it ends; a directory whose VMM died without doing so is stale and is
 * reclaimed by the next `vm run` of that name or `vm ls`. */
#ifndef VIRTUS_CLI_VM_STATE_H
#define VIRTUS_CLI_VM_STATE_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lib/err.h"

#define VM_NAME_MAX 63
#define VM_SOCKET_PATH_MAX 108 /* sun_path */

struct vm_state {
	char name[VM_NAME_MAX + 1];
	char dir[PATH_MAX];
	char api_socket[VM_SOCKET_PATH_MAX];
	char console_socket[VM_SOCKET_PATH_MAX]; /* "" unless detached */
	pid_t pid;
	bool detached;
	long long started;                       /* wall clock, seconds */
};

/* Where the VMs' directories are: $VIRTUS_VM_RUN_DIR, else /run/virtus-vms for root and a directory of
 * the user's own for anyone else. */
int vm_state_root(char *out, size_t len, vt_err *err);
/* A name is 1-63 of [A-Za-z0-9_.-], starting with a letter or digit. */
int vm_state_check_name(const char *name, vt_err *err);
/* A fresh name "vm-XXXXXX" (random hex) for a VM run without --name. */
void vm_state_random_name(char *out, size_t len);
/* Make NAME's directory (exclusively: a live VM of that name is an error; a stale one is removed first) and
 * fill st's paths. api_socket: --api-socket, or NULL for <dir>/api.sock. */
int vm_state_create(const char *name, const char *api_socket, bool detached, struct vm_state *st, vt_err *err);
/* Write vm.json (atomically: a reader never sees half of it) with the calling process as the VMM. */
int vm_state_publish(struct vm_state *st, vt_err *err);
/* Read NAME's vm.json; "no VM named NAME" if there is none. */
int vm_state_load(const char *name, struct vm_state *st, vt_err *err);
/* Whether the VMM that published st still runs. */
bool vm_state_alive(const struct vm_state *st);
/* Remove the directory and everything in it (the sockets' files too). */
void vm_state_remove(const struct vm_state *st);
/* The names of every VM directory, sorted; free with vm_state_free_names. */
int vm_state_list(char ***names, size_t *n, vt_err *err);
void vm_state_free_names(char **names, size_t n);

#endif
