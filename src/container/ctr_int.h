/* Internals shared by the container files that run containers (not a contract: container.h is). */
#ifndef VIRTUS_CONTAINER_CTR_INT_H
#define VIRTUS_CONTAINER_CTR_INT_H

#include "container/container.h"

/* What the monitor tells the command that forked it, over a SOCK_SEQPACKET pair. */
enum ctr_msg_type { CTR_MSG_STARTED = 1, CTR_MSG_ERROR };
struct ctr_msg {
	int type;
	int value; /* STARTED: init's pid; ERROR: the exit status to return (125/126/127) */
	char msg[VT_ERR_MSG_MAX];
};

/* How the monitor runs the container. */
struct ctr_launch {
	const struct ctr_store *store;
	const char *id;
	bool detach, tty, interactive;
	bool auto_remove;
	bool vm;                  /* --isolation=vm: the container runs in a microVM of its own (vm_monitor.c) */
	uint64_t memory;          /* vm: the container's --memory (the VM's RAM is this plus a little) */
	uint64_t cpu_quota;       /* vm: --cpus as microseconds per 100 ms (vCPUs: rounded up) */
	struct cnet_config net;
	struct cnet_port ports[CNET_MAX_PORTS];
	struct cnet_lease lease;
};

/* What both monitors (monitor.c, vm_monitor.c) share: the message to the command that forked them (with
 * the pty's master as SCM_RIGHTS when fd >= 0), and the record updates for "running" (arg: struct
 * ctr_started; pid is the container's init, or the VMM for a VM) and "exited" (arg: int, the exit code). */
struct ctr_started {
	pid_t pid, monitor;
	unsigned long long monitor_start;
	const char *addr;
};
int ctr_monitor_send(int sock, int type, int value, const char *text, int fd);
void ctr_rec_set_running(json_object *rec, void *arg);
void ctr_rec_set_exited(json_object *rec, void *arg);

/* The child side of the fork: never returns. sock is the monitor's end of the pair. */
__attribute__((noreturn)) void ctr_monitor_main(struct ctr_launch *l, int sock);
__attribute__((noreturn)) void ctr_vm_monitor_main(struct ctr_launch *l, int sock);

/* Fork the monitor for a container whose record and bundle exist and whose rootfs is mounted; wait for its
 * start. Detached: returns once the container runs. Foreground: waits for the container and fills *status.
 * On failure the monitor has undone the runtime, network and mount; *status says 125/126/127. */
int ctr_launch(struct ctr_launch *l, int *status, vt_err *err);

struct img_store;
struct img_image;
/* Mount the container's rootfs (the image's layers, or its --rootfs dir, under its upper dir). store and
 * img: the record's image, already resolved by the caller, or NULL to open the store and resolve it here. */
int ctr_mount_rootfs(const struct ctr_store *s, const char *id, json_object *rec, struct img_store *store,
		     const struct img_image *img, vt_err *err);
void ctr_unmount_rootfs(const struct ctr_store *s, const char *id);
/* The network settings of the record (Network, Ports) into l. */
int ctr_launch_from_record(struct ctr_launch *l, json_object *rec, vt_err *err);
/* Status of an error from the runtime: 127 (not found) / 126 (not runnable) for process.args[0], else 125. */
int ctr_error_status(const vt_err *err);
/* Load a record under the container's lock, apply fn, save it. */
int ctr_record_update(const struct ctr_store *s, const char *id, void (*fn)(json_object *rec, void *arg), void *arg,
		      vt_err *err);
/* The bind mounts of the container's own /etc/resolv.conf, hosts and hostname (files in ctr_dir) into spec. */
void ctr_etc_add_mounts(json_object *spec, const char *run_dir);
/* Write those files for this launch: resolv.conf is the host's, less its nameservers on 127.0.0.0/8 unless
 * the network is the host's (slirp: its DNS 10.0.2.3 when none remains; bridge and none: no nameserver
 * then); hosts names localhost and the container's address (l->lease) with its hostname (the short id). */
int ctr_etc_write(const struct ctr_launch *l, vt_err *err);
/* Remove the container's directory and everything in it. */
int ctr_remove_dir(const struct ctr_store *s, const char *id, vt_err *err);

#endif
