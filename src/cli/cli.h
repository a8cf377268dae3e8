/* Commands of the `virtus` program. Each returns the process exit status. */
#ifndef VIRTUS_CLI_H
#define VIRTUS_CLI_H

#include <stdbool.h>

#include "vmm/vm.h"

#define EXIT_USAGE 2

int cmd_vm_run(int argc, char **argv);
int cmd_vm_probe(int argc, char **argv);

/* Forward host input to the guest's serial port until the VM stops; handles the escape sequence
 * (Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A) and SIGINT/SIGTERM/SIGHUP (blocked by the caller). */
void console_pump(struct vm *vm, int in_fd, int sig_fd);

/* Raw mode for an interactive terminal; restore with the saved state. */
struct term_state {
	bool active;
	int fd;
	char saved[64]; /* struct termios, kept opaque here */
};
void term_raw(struct term_state *t, int fd);
void term_restore(struct term_state *t);

#endif
