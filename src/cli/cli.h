/* Commands of the `virtus` program. Each returns the process exit status. */
#ifndef VIRTUS_CLI_H
#define VIRTUS_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/boot/boot.h"
#include "vmm/vm.h"

#define EXIT_USAGE 2
#define VIRTUS_VERSION "0.1.0"

/* Options given before the command: `virtus --root DIR run ...`. */
struct cli_globals {
	const char *root; /* the store root from --root, or NULL (then $VIRTUS_ROOT, then /var/lib/virtus) */
};

/* The image and container commands are in libvirtus-store.so (cli/store_loader.c loads it on first use):
 * run the command `symbol` (cmd_image, cmd_build, cmd_container or cmd_serve) from it. */
int store_command(const char *symbol, const struct cli_globals *g, int argc, char **argv);

/* Images (cli/image.c): `virtus image load|import|save|ls|rm|tag|history|inspect`. */
int cmd_image(const struct cli_globals *g, int argc, char **argv);
/* `virtus build` (cli/build.c). */
int cmd_build(const struct cli_globals *g, int argc, char **argv);
/* Containers (cli/container*.c): run, ps, logs, exec, stop, kill, start, rm, pause, unpause, inspect, diff,
 * commit. argv[0] is the command's name. */
int cmd_container(const struct cli_globals *g, int argc, char **argv);
/* `virtus serve`, the browser console (cli/serve.c). */
int cmd_serve(const struct cli_globals *g, int argc, char **argv);

int cmd_vm_run(int argc, char **argv);
/* `virtus vm ls|info|pause|resume|kill|console|logs` (vm_manage.c), argv[0] the verb; -1 if it is none. */
int cmd_vm_manage(int argc, char **argv);
/* Usage texts of the commands (stdout for --help, stderr after a usage error). */
extern const char vm_run_usage[], vm_probe_usage[], vm_manage_usage[];

/* What `vm run` settles before opening /dev/kvm (vm_preflight.c). */
struct vm_preflight {
	char guest_kernel[PATH_MAX], guest_initrd[PATH_MAX]; /* the default guest's files, when used */
	char cmdline[BOOT_CMDLINE_MAX + 1];                  /* the command line the guest gets */
	void *kernel;                                        /* the kernel file, read once */
};
/* Find the default guest if no kernel is given, read and check the kernel against the command line,
 * check the initrd, disks, memory size and vsock path; point cfg at the results. console_discarded:
 * --console none (no warning about a missing console= then). Errors name the file or option. */
int vm_preflight(struct vm_config *cfg, bool console_discarded, struct vm_preflight *pf, vt_err *err);
void vm_preflight_free(struct vm_preflight *pf);
int cmd_vm_probe(int argc, char **argv);

/* The console's escape sequence: Ctrl-A x quits (or detaches), Ctrl-A Ctrl-A sends Ctrl-A. Filters n input
 * bytes into out (room for 2n): false when the user typed Ctrl-A x. */
struct escape_state {
	bool pending;
};
bool console_escape_filter(struct escape_state *st, const uint8_t *in, size_t n, uint8_t *out, size_t *out_n);

/* Raw mode for an interactive terminal; restore with the saved state. */
struct term_state {
	bool active;
	int fd;
	char saved[64]; /* struct termios, kept opaque here */
};
void term_raw(struct term_state *t, int fd);
void term_restore(struct term_state *t);

#endif
