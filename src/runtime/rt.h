/* virtus-runtime internals: the parsed config.json, the persisted container state, and the steps of the
 * container lifecycle. One header on purpose: the runtime is small and every file needs the same types.
 * Code outside src/runtime/ includes runtime.h (the public part) instead. */
#ifndef VIRTUS_RT_H
#define VIRTUS_RT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"
#include "lib/util.h"
#include "runtime/runtime.h"

#define RT_DEFAULT_ROOT "/run/virtus-runtime"
#define RT_VERSION "0.1.0"
#define RT_OCI_VERSION "1.0.2"
/* In the state directory: init holds it open (close-on-exec) until its execve, so `start` can wait for that. */
#define RT_EXECED_FIFO "execed.fifo"

/* ---- config.json (spec.c). Strings point into the json tree that the spec keeps alive. ---- */

struct rt_mount {
	const char *destination, *type, *source;
	unsigned long flags;       /* MS_* applied at mount time */
	unsigned long propagation; /* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC), 0 = none */
	bool bind, recursive;
	bool tmpcopyup;            /* copy what the image has at the destination into the new tmpfs */
	char *data;                /* options the kernel parses itself (size=, mode=, ...) */
};

struct rt_namespace {
	int flag;          /* CLONE_NEW* */
	const char *path;  /* join this one instead of creating, or NULL */
};

struct rt_idmap {
	uint32_t container, host, size;
};

struct rt_rlimit {
	int resource;
	uint64_t soft, hard;
};

struct rt_hook {
	const char *path;
	const char **args;  /* NULL-terminated, may be empty */
	const char **env;   /* NULL-terminated */
	int timeout;        /* seconds, 0 = none */
};

enum rt_hook_kind {
	RT_HOOK_PRESTART,
	RT_HOOK_CREATE_RUNTIME,
	RT_HOOK_CREATE_CONTAINER,
	RT_HOOK_START_CONTAINER,
	RT_HOOK_POSTSTART,
	RT_HOOK_POSTSTOP,
	RT_HOOK_KINDS
};

struct rt_hooks {
	struct rt_hook *list[RT_HOOK_KINDS];
	size_t n[RT_HOOK_KINDS];
};

enum { RT_CAP_BOUNDING, RT_CAP_EFFECTIVE, RT_CAP_INHERITABLE, RT_CAP_PERMITTED, RT_CAP_AMBIENT, RT_CAP_SETS };

struct rt_process {
	bool terminal;
	unsigned short console_rows, console_cols; /* process.consoleSize; 0 = not given */
	const char **args;  /* NULL-terminated */
	const char **env;   /* NULL-terminated */
	const char *cwd;
	uid_t uid;
	gid_t gid;
	gid_t *additional_gids;
	size_t n_additional_gids;
	bool has_umask;
	mode_t umask;
	bool has_caps;
	uint64_t caps[RT_CAP_SETS];
	struct rt_rlimit *rlimits;
	size_t n_rlimits;
	bool no_new_privileges;
	bool has_oom_score_adj;
	int oom_score_adj;
	const char *apparmor_profile;  /* process.apparmorProfile, or NULL */
	const char *selinux_label;     /* process.selinuxLabel, or NULL */
};

struct rt_device {
	const char *path;
	mode_t type;        /* S_IFCHR, S_IFBLK or S_IFIFO */
	unsigned major, minor;
	mode_t mode;        /* permission bits */
	uid_t uid;
	gid_t gid;
};

struct rt_sysctl {
	const char *key, *value;
};

struct rt_spec {
	json_object *json;           /* owns every string below */
	char *bundle;                /* absolute */
	char *rootfs;                /* absolute */
	bool rootfs_readonly;
	const char *hostname, *domainname;
	struct rt_process process;
	struct rt_mount *mounts;
	size_t n_mounts;
	struct rt_namespace *namespaces;
	size_t n_namespaces;
	struct rt_idmap *uid_maps, *gid_maps;
	size_t n_uid_maps, n_gid_maps;
	const char **masked_paths, **readonly_paths;
	size_t n_masked_paths, n_readonly_paths;
	struct rt_sysctl *sysctls;
	size_t n_sysctls;
	struct rt_device *devices;
	size_t n_devices;
	unsigned long rootfs_propagation; /* 0 = default (rslave for our own mounts) */
	bool has_personality;
	unsigned long personality;
	json_object *linux_obj;      /* for the cgroup backend, may be NULL */
	json_object *seccomp;        /* linux.seccomp, may be NULL */
	json_object *annotations;    /* may be NULL */
	struct rt_hooks hooks;
};

/* Load and validate bundle/config.json. Errors name the offending field. */
int rt_spec_load(const char *bundle, struct rt_spec **out, vt_err *err);
/* The same from text in memory (root.path is still resolved against bundle). */
int rt_spec_parse(const char *bundle, const char *text, size_t len, struct rt_spec **out, vt_err *err);
/* Parse a "process" object (config.json's, or exec --process's). `field` prefixes error messages. */
int rt_spec_parse_process(json_object *p, const char *field, struct rt_process *out, vt_err *err);
void rt_process_clear(struct rt_process *p);
/* Parse a hooks object; used at create time and again when the state is reloaded for delete. */
int rt_spec_parse_hooks(json_object *hooks, struct rt_hooks *out, vt_err *err);
void rt_hooks_clear(struct rt_hooks *h);
void rt_spec_free(struct rt_spec *spec);
bool rt_spec_has_namespace(const struct rt_spec *spec, int flag, const char **path);
/* The VM-isolation code (globals->vm_ops), or NULL with err saying why it is not available; what names
 * the container in the message (e.g. "container 'x' runs in a VM, and"). */
const struct rt_vm_ops *rt_vm_ops(const struct rt_globals *g, const char *what, vt_err *err);
/* Does the spec ask for VM isolation (RT_ANNOTATION_ISOLATION)? An unknown value is an error. */
int rt_spec_isolation_vm(const struct rt_spec *spec, bool *vm, vt_err *err);

/* Names <-> numbers (names.c). */
int rt_cap_from_name(const char *name);   /* -1 if unknown */
const char *rt_cap_name(int cap);
int rt_rlimit_from_name(const char *name);
int rt_namespace_from_name(const char *name); /* CLONE_NEW* or 0 */
const char *rt_namespace_proc_name(int flag); /* "mnt", "pid", ... */
json_object *rt_features_json(void);

/* ---- persisted state (state.c) ---- */

enum rt_status { RT_CREATING, RT_CREATED, RT_RUNNING, RT_PAUSED, RT_STOPPED };

struct rt_state {
	char *id;
	char *dir;            /* <root>/<id> */
	char *bundle;
	pid_t pid;
	unsigned long long start_time; /* /proc/<pid>/stat field 22, guards against pid reuse */
	char *created;        /* RFC 3339 */
	bool paused;
	bool no_pivot;
	bool vm;              /* VM-isolated (RT_ANNOTATION_ISOLATION): pid is the shim that owns the VM */
	/* No mount namespace of its own: the rootfs bind mount made in the runtime's namespace, removed at delete
	 * (shared_rootfs NULL otherwise); rootfs_mnt_base is the mount id the rootfs had before create. */
	char *shared_rootfs;
	uint64_t rootfs_mnt_base;
	json_object *annotations;  /* may be NULL */
	json_object *cgroup;       /* rt_cgroup_to_json(), may be NULL */
	json_object *hooks;        /* the config's hooks, for poststop at delete time; may be NULL */
	json_object *json;         /* the loaded file, owns the above */
};

int rt_validate_id(const char *id, vt_err *err);
char *rt_state_dir(const char *root, const char *id);
char *rt_path_join(const char *a, const char *b);
int rt_state_save(const struct rt_state *st, vt_err *err);
int rt_state_load(const char *root, const char *id, struct rt_state **out, vt_err *err);
void rt_state_free(struct rt_state *st);
enum rt_status rt_state_status(const struct rt_state *st);
const char *rt_status_name(enum rt_status s);
/* The OCI state object ("ociVersion", "id", "status", "pid", "bundle", "annotations"). */
json_object *rt_state_oci_json(const struct rt_state *st, enum rt_status status);
int rt_proc_start_time(pid_t pid, unsigned long long *out);
bool rt_pid_alive(pid_t pid, unsigned long long start_time);
int rt_remove_tree(const char *path);
char *rt_now_rfc3339(void);
/* Parse exactly len bytes of JSON (the buffer need not be NUL-terminated); NULL if invalid. */
json_object *rt_json_parse(const char *text, size_t len);
/* Write path through a temporary file and a rename: a reader sees the old file or the new, never a part.
 * durable: fsync first, so that the new content survives a crash (not for state that a reboot makes
 * meaningless anyway, like a running container's, or a --rm container's files). */
int rt_write_file_atomic(const char *path, const char *data, bool durable, vt_err *err);
/* --pid-file: the pid in decimal, written atomically (a reader never sees a partial file). */
int rt_write_pid_file(const char *path, pid_t pid, vt_err *err);

/* ---- hooks (hooks.c): run each with the OCI state on stdin; fatal kinds fail the operation ---- */
int rt_hooks_run(const struct rt_hooks *h, enum rt_hook_kind kind, const char *state_json, vt_err *err);
/* The non-fatal kinds (poststart, poststop): every hook runs even after one fails; warn(arg, message) is called
 * for each failure. Returns how many failed. */
size_t rt_hooks_run_each(const struct rt_hooks *h, enum rt_hook_kind kind, const char *state_json,
			 void (*warn)(void *arg, const char *msg), void *arg);

/* ---- inside the container (rootfs.c, process.c) ---- */
/* Mounts, devices, pivot_root/chroot, masked and read-only paths. Called in the new mount namespace.
 * The callback runs after the mounts and before the root switch (for createContainer hooks). */
struct rt_cgroup_view;
struct rt_rootfs_opts {
	bool no_pivot;
	bool in_userns;
	bool shared_mount_ns;  /* no mount namespace of our own: chroot, never touch "/" or pivot */
	/* v1/hybrid: the container's own cgroup directories, shown at a `cgroup` mount (rt_cgroup_views) */
	const struct rt_cgroup_view *cgroup_views;
	size_t n_cgroup_views;
	int (*before_switch)(void *arg, vt_err *err);
	void *arg;
};
int rt_rootfs_setup(const struct rt_spec *spec, const struct rt_rootfs_opts *o, vt_err *err);
/* The id of the mount that path is on (statx STATX_MNT_ID); -1 if the kernel cannot say. */
int rt_mount_id(const char *path, uint64_t *id);
/* A container that shares the runtime's mount namespace leaves its rootfs bind mount (with everything mounted
 * below it) in that namespace: detach it, if the mount on rootfs is still not the one it had before (base). */
void rt_rootfs_release_shared(const char *rootfs, uint64_t base);
/* Resolve path under rootfd as if rootfd were "/" (symlinks and ".." cannot leave it), creating missing
 * directories and the last component (a directory, or an empty file). Returns an O_PATH fd. */
int rt_rootfs_ensure(int rootfd, const char *path, bool dir, vt_err *err);
/* The fallback for kernels without openat2: resolve path under rootfd component by component with
 * O_PATH|O_NOFOLLOW, following symlinks by hand and clamping ".." at the root. Returns an O_PATH fd. */
int rt_rootfs_resolve_walk(int rootfd, const char *path, vt_err *err);

/* Process attributes after the root is in place: rlimits, user, capabilities, no_new_privs, cwd.
 * Seccomp is applied at the right point (before caps when no_new_privileges is false). */
struct rt_seccomp;
int rt_process_setup(const struct rt_process *p, struct rt_seccomp *sc, vt_err *err);
int rt_process_exec(const struct rt_process *p, vt_err *err);
int rt_set_rlimits(const struct rt_process *p, vt_err *err);
int rt_set_oom_score_adj(const struct rt_process *p, vt_err *err);
/* Is the host able to apply the process's AppArmor profile / SELinux label? A security setting that cannot be
 * applied is refused, never ignored. */
int rt_process_check_lsm(const struct rt_process *p, vt_err *err);

/* ---- console (console.c) ---- */
int rt_console_connect(const char *path, vt_err *err);
/* Open a new pty in the current mount namespace (rows x cols when both are given), send the master over
 * sock, make the slave our controlling terminal and stdio. */
int rt_console_setup(int sock, unsigned short rows, unsigned short cols, vt_err *err);
/* Send a pty master (name: its slave's path) over a console socket, as --console-socket's users expect. */
int rt_console_send(int sock, int master, const char *name, vt_err *err);
/* The other end: receive the pty master sent by rt_console_setup. */
int rt_console_recv(int sock, vt_err *err);

/* ---- commands: declared in runtime.h (the public header) ---- */

/* Wait for our child pid, forwarding SIGINT/TERM/HUP/QUIT/USR1/USR2/WINCH to it; *exit_status is its
 * exit status or 128+signal. */
int rt_wait_forwarding(pid_t pid, int *exit_status);
/* The same while relaying our stdin/stdout to a pty master (run with process.terminal and no
 * --console-socket); a terminal on our stdin is put in raw mode meanwhile. */
int rt_wait_relaying(pid_t pid, int master, int *exit_status);
/* The same, with the pty's output also appended to log. */
int rt_wait_relaying_logged(pid_t pid, int master, int log, int *exit_status);
/* waitpid for our child, retrying on EINTR; the wait status, or -1. */
int rt_reap(pid_t pid);

/* Wait for a pid that is not necessarily our child (pidfd poll), up to timeout_ms (-1 = forever). */
int rt_wait_pid_gone(pid_t pid, unsigned long long start_time, int timeout_ms);

/* ---- parent <-> child synchronisation over a SOCK_SEQPACKET pair (sync.c) ---- */
enum rt_sync_type {
	RT_SYNC_GO = 1,      /* parent -> child: continue */
	RT_SYNC_USERNS,      /* child -> parent: write my uid/gid maps */
	RT_SYNC_USERNS_DONE,
	RT_SYNC_PID,         /* intermediate -> parent: value = the container process's pid */
	RT_SYNC_HOOKS,       /* init -> parent: run prestart/createRuntime hooks now */
	RT_SYNC_HOOKS_DONE,  /* value = init's pid as the host sees it */
	RT_SYNC_READY,       /* init -> parent: set up, waiting for start */
	RT_SYNC_ERROR,       /* child -> parent: msg says what failed */
};
struct rt_sync_msg {
	int type;
	int value;
	char msg[VT_ERR_MSG_MAX];
};
int rt_sync_send(int fd, int type, int value, const char *msg);
/* Returns 0, or -1 with err set (EOF counts as an error: the child died). */
int rt_sync_recv(int fd, struct rt_sync_msg *m, vt_err *err);
/* Receive and insist on one type; an RT_SYNC_ERROR from the child becomes err. */
int rt_sync_expect(int fd, int type, struct rt_sync_msg *m, vt_err *err);
/* An RT_SYNC_ERROR message as err (its value is the child's errno: ENOENT/EACCES for a missing or unrunnable
 * process.args[0]). Returns -1. */
int rt_sync_error(vt_err *err, const struct rt_sync_msg *m);
/* Child side: report err to the parent and exit. */
__attribute__((noreturn)) void rt_sync_die(int fd, const vt_err *err);
/* The middle process of create and exec: wait for the runtime's go-ahead on child_sock, enter(ctx) the
 * namespaces, fork the process that runs child(ctx) (it never returns), report its pid, exit. */
__attribute__((noreturn)) void rt_sync_middle(int child_sock, int (*enter)(void *ctx, vt_err *err),
					      void (*child)(void *ctx), void *ctx);
/* Join the namespace at path (a /proc/<pid>/ns/<x> file or a bind mount of one). */
int rt_join_namespace(const char *path, int flag, vt_err *err);
/* Write uid_map/gid_map (and setgroups deny when we are not root) for pid. */
int rt_write_id_maps(pid_t pid, const struct rt_idmap *uids, size_t n_uids, const struct rt_idmap *gids,
		     size_t n_gids, vt_err *err);
/* Is args[0] an executable in the current root, searched through the process's PATH? */
int rt_check_executable(const struct rt_process *p, vt_err *err);

#endif
