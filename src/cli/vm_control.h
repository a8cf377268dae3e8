/* The VMM's control loop: the main thread of `virtus vm run` once the guest runs. It serves, in one
 * poll loop and never blocking on any of them: host signals, the foreground console's input, the VM API
 * (api/http.h), a migration the API started (a step each time its socket takes more), and a detached VM's
 * console (its log and an attached `virtus vm console`). */
#ifndef VIRTUS_CLI_VM_CONTROL_H
#define VIRTUS_CLI_VM_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/http.h"
#include "api/vm_api.h"
#include "vmm/vm.h"

#define CONSOLE_LOG_MAX (1 << 20) /* console.log keeps its newer half beyond this */

/* A detached VM's console: guest output arrives on a pipe and goes to the log and the attached client. */
struct console_hub {
	int out_rd;                 /* the pipe's read end; the guest's console writes the other end */
	int log_fd;                 /* console.log */
	uint64_t log_bytes;
	int listen_fd;              /* console.sock */
	int client_fd;              /* the attached client, -1 if none */
};

/* Make the pipe (*out_wr is the console device's fd), open the log and listen on the socket. */
int console_hub_open(struct console_hub *h, const char *log_path, const char *socket_path, int *out_wr, vt_err *err);
/* Move the guest's output that waits in the pipe to the log and the client (never blocks). */
void console_hub_flush(struct console_hub *h);
void console_hub_close(struct console_hub *h);

struct vm_control {
	struct vm *vm;
	int sig_fd;                 /* signalfd of SIGINT, SIGTERM, SIGHUP, SIGQUIT */
	int in_fd;                  /* foreground console input, -1 if none */
	bool escape_quits;          /* Ctrl-A x on in_fd stops the VM */
	unsigned stop_timeout_s;    /* SIGTERM presses the power button and stops the VM this long after; 0: at once */
	struct api_server *api;     /* NULL: no API */
	struct vm_api *api_ctx;     /* its routes' state: a migration it started is stepped here */
	struct console_hub *hub;    /* NULL: not detached */
	int handoff_fd;             /* a jailed VMM's handoff socket (api/handoff.h), else -1 */
};

/* How long a migrated VM's VMM waits for a client to learn the outcome (GET /migrate) before it ends. */
#define MIGRATED_LINGER_MS 3000

/* Run until the VM stops. SIGTERM asks the guest to power off (the ACPI power button) and stops the VM
 * stop_timeout_s later if it has not; a second SIGTERM, SIGINT, SIGHUP and SIGQUIT stop it at once. */
void vm_control_loop(struct vm_control *c);

#endif
