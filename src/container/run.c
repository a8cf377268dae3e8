/* `virtus run`: a new container record, its bundle and its rootfs, then the monitor (launch.c) runs it;
 * `virtus start` runs an existing one again. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/ctr_int.h"
#include "image/image.h"
#include "lib/util.h"
#include "runtime/rt.h"


/* What the new container is made from: an image, or a plain directory (--rootfs). */
struct base {
	struct img_store *store;
	struct img_image *img;
	char *rootfs;        /* realpath of --rootfs */
	json_object *config; /* the image config's "config" object, or NULL */
};

static void base_clear(struct base *b)
{
	if (b->img)
		img_image_free(b->img);
	if (b->store)
		img_store_close(b->store);
	free(b->rootfs);
}

static int resolve_base(const char *root, const struct ctr_run_opts *o, struct base *b, vt_err *err)
{
	if (o->rootfs) {
		struct stat st;
		b->rootfs = realpath(o->rootfs, NULL);
		if (!b->rootfs || stat(b->rootfs, &st) || !S_ISDIR(st.st_mode))
			return vt_fail(err, "--rootfs %s: not a directory", o->rootfs);
		return 0;
	}
	if (img_store_open(root, &b->store, err) || img_resolve(b->store, o->image, &b->img, err))
		return -1;
	json_object_object_get_ex(b->img->config, "config", &b->config);
	return 0;
}

static int random_id(char id[CTR_ID_LEN + 1], vt_err *err)
{
	unsigned char raw[CTR_ID_LEN / 2];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return vt_fail_errno(err, errno, "getrandom");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* Names people can tell apart and type: adjective_noun, as podman does (uniqueness is checked after). */
static void generate_name(const char *id, char *out, size_t len)
{
	static const char *const adj[] = { "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen",
					   "lucid", "merry", "nimble", "proud", "quiet", "swift", "tidy", "witty" };
	static const char *const noun[] = { "badger", "crane", "dolphin", "falcon", "gecko", "heron", "ibis",
					    "koala", "lynx", "marten", "otter", "panda", "quail", "raven", "stoat",
					    "tapir" };
	unsigned a = (unsigned)strtoul((char[3]){ id[0], id[1], 0 }, NULL, 16);
	unsigned n = (unsigned)strtoul((char[3]){ id[2], id[3], 0 }, NULL, 16);
	snprintf(out, len, "%s_%s_%.4s", adj[a % ARRAY_SIZE(adj)], noun[n % ARRAY_SIZE(noun)], id + 4);
}

static int check_name(const char *name, vt_err *err)
{
	bool ok = *name && strlen(name) < 128 && ((*name >= 'a' && *name <= 'z') || (*name >= 'A' && *name <= 'Z') ||
						  (*name >= '0' && *name <= '9'));
	for (const char *c = name; ok && *c; c++)
		ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
		     *c == '.' || *c == '-';
	if (!ok)
		return vt_fail(err, "invalid container name '%s': use letters, digits, '_', '.', '-' (first a letter "
			       "or digit)", name);
	return 0;
}

static int name_taken(const struct ctr_store *s, const char *name, vt_err *err)
{
	char other[CTR_ID_LEN + 1];
	vt_err ignored;
	if (ctr_lookup(s, name, other, &ignored))
		return 0;
	json_object *rec;
	if (ctr_record_load(s, other, &rec, &ignored))
		return 0;
	bool same = !strcmp(ctr_rec_str(rec, "Name"), name);
	json_object_put(rec);
	return same ? vt_fail(err, "the name '%s' is already in use by container %.12s", name, other) : 0;
}

static json_object *strings_json(const char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static const char *mode_name(enum cnet_mode m)
{
	static const char *const names[] = { [CNET_BRIDGE] = "bridge", [CNET_SLIRP] = "slirp", [CNET_NONE] = "none",
					     [CNET_HOST] = "host" };
	return names[m];
}

static json_object *volumes_json(const struct ctr_run_opts *o)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < o->n_volumes; i++) {
		json_object *v = json_object_new_object();
		json_object_object_add(v, "Source", json_object_new_string(o->volumes[i].host));
		json_object_object_add(v, "Destination", json_object_new_string(o->volumes[i].ctr));
		json_object_object_add(v, "RW", json_object_new_boolean(!o->volumes[i].ro));
		json_object_array_add(a, v);
	}
	return a;
}

static json_object *new_record(const char *id, const char *name, const struct ctr_run_opts *o,
			       const struct base *b)
{
	json_object *rec = json_object_new_object();
	cleanup_free char *now = rt_now_rfc3339();
	ctr_rec_set_str(rec, "Id", id);
	ctr_rec_set_str(rec, "Name", name);
	ctr_rec_set_str(rec, "ImageId", b->img ? b->img->id : "");
	ctr_rec_set_str(rec, "ImageName", b->img ? (b->img->name ? b->img->name : o->image) : "");
	ctr_rec_set_str(rec, "Rootfs", b->rootfs);
	ctr_rec_set_str(rec, "Created", now);
	ctr_rec_set_str(rec, "State", "created");
	ctr_rec_set_str(rec, "Network", mode_name(o->net.mode));
	ctr_rec_set_str(rec, "Isolation", o->vm ? "vm" : "container");
	json_object_object_add(rec, "Ports", strings_json(o->port_specs, o->net.n_ports));
	json_object_object_add(rec, "Volumes", volumes_json(o));
	json_object_object_add(rec, "AutoRemove", json_object_new_boolean(o->auto_remove));
	json_object_object_add(rec, "Tty", json_object_new_boolean(o->tty));
	json_object_object_add(rec, "Interactive", json_object_new_boolean(o->interactive));
	ctr_rec_set_int(rec, "Memory", (long long)o->memory);
	ctr_rec_set_int(rec, "CpuQuota", (long long)o->cpu_quota);
	ctr_rec_set_int(rec, "PidsLimit", o->pids_limit);
	json_object *entrypoint, *cmd, *iuser = NULL;
	ctr_command_parts(o, b->config, &entrypoint, &cmd);
	json_object_object_add(rec, "Entrypoint", entrypoint);
	json_object_object_add(rec, "Cmd", cmd);
	if (b->config)
		json_object_object_get_ex(b->config, "User", &iuser);
	ctr_rec_set_str(rec, "User", o->user ? o->user : iuser ? json_object_get_string(iuser) : "");
	return rec;
}

static int make_dirs(const struct ctr_store *s, const char *id, vt_err *err)
{
	static const char *const sub[] = { "", "bundle", "upper", "work" };
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
		cleanup_free char *p = ctr_path(s, id, sub[i]);
		if (!p || mkdir(p, i ? 0755 : 0700))
			return vt_fail_errno(err, p ? errno : ENOMEM, "cannot create %s", p ? p : "the container");
	}
	return 0;
}

/* Under the store's container lock, so that two runs cannot take one name. */
static int create_record(const struct ctr_store *s, const char *id, const char *name, json_object *rec, vt_err *err)
{
	cleanup_free char *lock_path = rt_path_join(s->containers, ".lock");
	cleanup_close int lock = lock_path ? open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
	if (lock < 0 || flock(lock, LOCK_EX))
		return vt_fail_errno(err, errno, "cannot lock %s", s->containers);
	if (name_taken(s, name, err) || make_dirs(s, id, err))
		return -1;
	return ctr_record_save(s, id, rec, err);
}

static int mkdir_p(const char *path, vt_err *err)
{
	cleanup_free char *copy = strdup(path);
	if (!copy)
		return vt_fail_errno(err, ENOMEM, "mkdir");
	for (char *p = copy + 1;; p++) {
		bool end = !*p;
		if (*p != '/' && !end)
			continue;
		*p = 0;
		if (mkdir(copy, 0755) && errno != EEXIST)
			return vt_fail_errno(err, errno, "cannot create %s", copy);
		if (end)
			return 0;
		*p = '/';
	}
}

/* -v: the host directory is made if missing, as podman does. */
static int make_volume_dirs(const struct ctr_run_opts *o, vt_err *err)
{
	for (size_t i = 0; i < o->n_volumes; i++)
		if (mkdir_p(o->volumes[i].host, err))
			return vt_err_prefix(err, "-v %s", o->volumes[i].host);
	return 0;
}

/* The working directory is made when the image lacks it (as podman does), inside the rootfs, owned by root. */
static int make_workdir(const char *rootfs, json_object *spec, vt_err *err)
{
	json_object *proc = NULL, *cwd = NULL;
	if (!json_object_object_get_ex(spec, "process", &proc) || !json_object_object_get_ex(proc, "cwd", &cwd))
		return 0;
	cleanup_close int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return vt_fail_errno(err, errno, "cannot open %s", rootfs);
	int fd = rt_rootfs_ensure(root, json_object_get_string(cwd), true, err);
	if (fd < 0)
		return vt_err_prefix(err, "working directory");
	close(fd);
	return 0;
}

static int write_bundle(const struct ctr_store *s, const char *id, const struct ctr_run_opts *o,
			const struct base *b, vt_err *err)
{
	cleanup_free char *rootfs = ctr_rootfs(s, id);
	cleanup_free char *path = ctr_path(s, id, "bundle/config.json");
	char hostname[CTR_SHORT_ID_LEN + 1];
	snprintf(hostname, sizeof(hostname), "%.12s", id);
	cleanup_free char *dir = ctr_run_path(s, id, NULL);
	json_object *spec;
	if (!rootfs || !path || !dir)
		return vt_fail_errno(err, ENOMEM, "bundle");
	if (ctr_build_spec(o, b->config, rootfs, hostname, &spec, err))
		return -1;
	ctr_etc_add_mounts(spec, dir);
	int rc = make_workdir(rootfs, spec, err);
	if (!rc)
		rc = rt_write_file_atomic(path, json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PRETTY),
					  !o->auto_remove, err);
	json_object_put(spec);
	return rc;
}

static int prepare_container(const struct ctr_store *s, const char *id, const char *name,
			     const struct ctr_run_opts *o, const struct base *b, vt_err *err)
{
	json_object *rec = new_record(id, name, o, b);
	int rc = create_record(s, id, name, rec, err);
	if (!rc)
		rc = ctr_mount_rootfs(s, id, rec, b->store, b->img, err);
	json_object_put(rec);
	if (rc || make_volume_dirs(o, err) || write_bundle(s, id, o, b, err))
		return -1;
	return 0;
}

static int run_in_store(const struct ctr_store *s, const struct ctr_run_opts *o, const struct base *b,
			char id[CTR_ID_LEN + 1], int *status, vt_err *err)
{
	char name[160];
	if (random_id(id, err))
		return -1;
	if (o->name)
		snprintf(name, sizeof(name), "%s", o->name);
	else
		generate_name(id, name, sizeof(name));
	if (check_name(name, err))
		return -1;
	if (o->vm && o->net.mode == CNET_HOST)
		return vt_fail(err, "--network host cannot be used with --isolation=vm: the VM has a kernel and network of "
			       "its own (use bridge, slirp or none)");
	struct ctr_launch l = { .store = s, .id = id, .detach = o->detach, .tty = o->tty,
				.interactive = o->interactive, .auto_remove = o->auto_remove, .net = o->net,
				.vm = o->vm, .memory = o->memory, .cpu_quota = o->cpu_quota };
	if (prepare_container(s, id, name, o, b, err) || ctr_launch(&l, status, err)) {
		vt_err ignored;
		/* A run that failed leaves nothing: not even the record (the monitor undid the rest). */
		ctr_remove_dir(s, id, &ignored);
		if (*status == 0)
			*status = CTR_EXIT_ERROR;
		return -1;
	}
	return 0;
}

int ctr_run(const char *root, const struct ctr_run_opts *o, char id[CTR_ID_LEN + 1], int *status, vt_err *err)
{
	struct ctr_store s;
	struct base b = { 0 };
	vt_err ignored;
	*status = CTR_EXIT_ERROR;
	if (ctr_store_init(&s, root, err))
		return -1;
	cnet_gc(root, &ignored); /* what a crashed container left */
	int rc = resolve_base(root, o, &b, err);
	if (!rc)
		rc = run_in_store(&s, o, &b, id, status, err);
	base_clear(&b);
	ctr_store_clear(&s);
	return rc;
}

static int start_in_store(const struct ctr_store *s, const char *ref, vt_err *err)
{
	char id[CTR_ID_LEN + 1];
	if (ctr_lookup(s, ref, id, err))
		return -1;
	json_object *rec;
	if (ctr_record_load(s, id, &rec, err))
		return -1;
	const char *st = ctr_status(rec);
	struct ctr_launch l = { .store = s, .id = id, .detach = true };
	int rc = 0, status;
	if (strcmp(st, "created") && strcmp(st, "exited"))
		rc = vt_fail(err, "container %s is %s: only a created or exited container can be started",
			     ctr_rec_str(rec, "Name"), st);
	if (!rc)
		rc = ctr_launch_from_record(&l, rec, err);
	if (!rc) {
		ctr_unmount_rootfs(s, id); /* a monitor that crashed may have left it */
		rc = ctr_mount_rootfs(s, id, rec, NULL, NULL, err);
	}
	json_object_put(rec);
	if (!rc && ctr_launch(&l, &status, err)) {
		ctr_unmount_rootfs(s, id);
		rc = -1;
	}
	return rc;
}

int ctr_start(const char *root, const char *ref, vt_err *err)
{
	struct ctr_store s;
	if (ctr_store_init(&s, root, err))
		return -1;
	vt_err ignored;
	cnet_gc(root, &ignored);
	int rc = start_in_store(&s, ref, err);
	ctr_store_clear(&s);
	return rc;
}
