/* Containers: `virtus run` and the commands that manage what it started (ps, logs, exec, stop, kill, start,
 * rm, pause, unpause, inspect, diff, commit).
 *
 * A container lives in <store root>/containers/<id>/:
 *   container.json   its record (ctr_record_*): written atomically (temp + rename) under a flock of <id>/
 *   bundle/          the OCI bundle: config.json (ctr_build_spec); its root is rootfs/ in the run dir (below)
 *   upper/, work/    the overlay's writable layer and work dir: kept across restarts, read by diff and commit
 *   ctr.log          the container's stdout and stderr, detached or in the foreground (-t: the CLI copies
 *                    what it relays from the pty)
 * What lasts only while it runs is in the store's run root, on /run (ctr_store_init): in containers/<id>/
 * the overlay mount point rootfs/ and its /etc files (resolv.conf, hosts, hostname, bound over the rootfs's,
 * written at each launch), and the runtime library's state (src/runtime) in runtime/<id>/.
 *
 * Life of a run (ctr_run, ctr_start):
 *   the CLI process     resolves the image, writes the record and the bundle, mounts the rootfs, reserves the
 *                       network (cnet_prepare), forks the monitor, then waits for its "started" message (-d)
 *                       or for its exit (foreground: the monitor's exit status is the container's);
 *   the monitor         setsid, child subreaper: rt create (stdio = the log file; foreground without -t: the caller's
 *                       stdio, stdout and stderr through pipes that it copies to the caller and the log),
 *                       cnet_attach, rt start, records "running", reaps the container, records the exit code,
 *                       rt delete, cnet_detach, unmounts the rootfs; with --rm removes the container.
 * Every failure before "started" undoes all of it: no record, mount, cgroup, netns or process is left.
 *
 * Exit statuses follow podman: 125 for virtus's own errors, 126 when the command cannot be run, 127 when it
 * is not found; otherwise the container's status (128+signal when it was killed). Nothing here prints. */
#ifndef VIRTUS_CONTAINER_H
#define VIRTUS_CONTAINER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "container/net.h"
#include "lib/err.h"

#define CTR_ID_LEN 64
#define CTR_SHORT_ID_LEN 12
#define CTR_EXIT_ERROR 125
#define CTR_EXIT_CANNOT_RUN 126
#define CTR_EXIT_NOT_FOUND 127

struct ctr_volume {
	const char *host, *ctr;
	bool ro;
};

/* What `virtus run` was asked for. Strings are borrowed from the caller. */
struct ctr_run_opts {
	const char *image;           /* image reference; NULL when rootfs is given */
	const char *rootfs;          /* --rootfs DIR: the single read-only lower dir */
	const char *name;            /* NULL: generated */
	bool detach, auto_remove, interactive, tty;
	const char *const *cmd;      /* CMD [ARG...] after the image; n_cmd 0 = the image's */
	size_t n_cmd;
	const char *entrypoint;      /* --entrypoint, or NULL */
	const char *const *env;      /* -e KEY=VALUE (or KEY: the caller's value) */
	size_t n_env;
	const char *workdir, *user;
	const struct ctr_volume *volumes;
	size_t n_volumes;
	uint64_t memory;             /* bytes, 0 = no limit */
	uint64_t cpu_quota;          /* microseconds per 100 ms period, 0 = no limit */
	int64_t pids_limit;          /* 0 = no limit */
	struct cnet_config net;
	const char *const *port_specs; /* the -p texts, kept in the record */
	bool vm;                     /* --isolation=vm: in a microVM of its own (the record's "Isolation") */
};

/* ---- the OCI config (config.c) ---- */

/* The config.json of a container: rt_spec_default() with the image config (its "config" object: Env,
 * Entrypoint, Cmd, WorkingDir, User; may be NULL) and the flags applied. User and group names are looked up
 * in rootfs's /etc/passwd and /etc/group (rootfs may be NULL: then only numbers are accepted). hostname is
 * the container's short id. */
int ctr_build_spec(const struct ctr_run_opts *o, json_object *image_config, const char *rootfs,
		   const char *hostname, json_object **out, vt_err *err);
/* The Entrypoint and Cmd the container runs (new arrays): --entrypoint replaces the image's and drops its Cmd,
 * as podman does; a CMD given on the command line replaces the image's Cmd. */
void ctr_command_parts(const struct ctr_run_opts *o, json_object *image_config, json_object **entrypoint,
		       json_object **cmd);
/* "name", "uid", "name:group", "uid:gid" -> numbers, through rootfs's /etc/passwd and /etc/group (the
 * primary group of the user when no group is given, 0 when the uid has no entry). */
int ctr_resolve_user(const char *rootfs, const char *spec, uid_t *uid, gid_t *gid, vt_err *err);
/* "1.5" -> 150000 (microseconds of CPU per 100000). */
int ctr_parse_cpus(const char *s, uint64_t *quota, vt_err *err);
/* "HOST:CTR[:ro|:rw]" (HOST absolute); the strings point into a copy owned by *out's caller via *buf. */
int ctr_parse_volume(const char *spec, struct ctr_volume *out, char **buf, vt_err *err);

/* ---- records (record.c) ---- */

#define CTR_RUN_ROOTS "/run/virtus-stores" /* a run root per store (record.c: run_root_of) */

struct ctr_store {
	char *root;        /* the store root */
	char *containers;  /* <root>/containers */
	char *run_root;    /* what lasts only while containers run (record.c: run_root_of) */
	char *run;         /* <run_root>/runtime: the runtime's state root */
	char *run_ctrs;    /* <run_root>/containers: a running container's /etc files, in <id>/ */
};
int ctr_store_init(struct ctr_store *s, const char *root, vt_err *err);
void ctr_store_clear(struct ctr_store *s);
char *ctr_dir(const struct ctr_store *s, const char *id);
char *ctr_path(const struct ctr_store *s, const char *id, const char *file);
/* <run_root>/containers/<id>/<file> (file NULL: the directory), made at launch and removed when it ends. */
char *ctr_run_path(const struct ctr_store *s, const char *id, const char *file);
int ctr_run_dir_make(const struct ctr_store *s, const char *id, vt_err *err);
/* The overlay mount point of a container's root file system: rootfs/ in its run dir. */
char *ctr_rootfs(const struct ctr_store *s, const char *id);
void ctr_run_dir_remove(const struct ctr_store *s, const char *id);

/* Find a container by full id, unique id prefix, or name; id receives its full id. */
int ctr_lookup(const struct ctr_store *s, const char *ref, char id[CTR_ID_LEN + 1], vt_err *err);
/* The same; *exact tells whether ref was the full id or the name (not just a prefix of the id). */
int ctr_lookup_exact(const struct ctr_store *s, const char *ref, char id[CTR_ID_LEN + 1], bool *exact,
		     vt_err *err);
int ctr_record_load(const struct ctr_store *s, const char *id, json_object **out, vt_err *err);
int ctr_record_save(const struct ctr_store *s, const char *id, json_object *rec, vt_err *err);
/* Exclusive lock of one container (a flock of its directory); returns the fd to close, or -1. */
int ctr_lock(const struct ctr_store *s, const char *id, vt_err *err);
/* Ids of every container, sorted by creation (oldest first). *ids is a NULL-terminated malloc'd array. */
int ctr_list(const struct ctr_store *s, char ***ids, vt_err *err);
void ctr_strv_free(char **v);

/* Record accessors: missing fields read as "" / 0. */
const char *ctr_rec_str(json_object *rec, const char *key);
long long ctr_rec_int(json_object *rec, const char *key);
void ctr_rec_set_str(json_object *rec, const char *key, const char *v);
void ctr_rec_set_int(json_object *rec, const char *key, long long v);
/* The status as the system shows it: "running"/"paused" with a dead monitor reads "exited". */
const char *ctr_status(json_object *rec);
/* Is the container's monitor alive (its pid and start time still match)? */
bool ctr_monitor_alive(json_object *rec);

/* ---- lifecycle (run.c, monitor.c, ops.c) ---- */

/* `run`: *status is the exit status to return (the container's, or 125/126/127 after err is filled).
 * id receives the new container's id (for -d). */
int ctr_run(const char *root, const struct ctr_run_opts *o, char id[CTR_ID_LEN + 1], int *status, vt_err *err);
/* `start`: run a created or exited container again, detached. */
int ctr_start(const char *root, const char *ref, vt_err *err);
int ctr_stop(const char *root, const char *ref, unsigned timeout_s, vt_err *err);
int ctr_kill(const char *root, const char *ref, int sig, vt_err *err);
int ctr_remove(const char *root, const char *ref, bool force, vt_err *err);
int ctr_pause(const char *root, const char *ref, bool pause, vt_err *err);

struct ctr_exec_opts {
	const char *const *args;
	size_t n_args;
	const char *const *env;
	size_t n_env;
	const char *workdir, *user;
	bool tty, interactive;
};
int ctr_exec(const char *root, const char *ref, const struct ctr_exec_opts *o, int *status, vt_err *err);

/* `inspect`: the container's description, or (ref is not a container) the image's. */
int ctr_inspect_json(const char *root, const char *ref, json_object **out, vt_err *err);
/* `diff`: calls line(kind, path, arg) for each change, kind 'A', 'C' or 'D', sorted by path. */
int ctr_diff(const char *root, const char *ref, void (*line)(char kind, const char *path, void *arg), void *arg,
	     vt_err *err);
/* `commit`: a new image named name from the container's changes; out_id receives its id. */
int ctr_commit(const char *root, const char *ref, const char *name, char *out_id, size_t out_len, vt_err *err);
/* The log file of a container and whether it may still grow (its monitor is alive). */
int ctr_log_path(const char *root, const char *ref, char **path, json_object **rec, vt_err *err);

#endif
