/* Container records: <store>/containers/<id>/container.json, found by id, id prefix or name. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/container.h"
#include "lib/util.h"
#include "runtime/rt.h"

#define RECORD_FILE "container.json"
#define RECORD_MAX (1 * MiB)

/* FNV-1a: a short, stable name for a store's path (a directory name, not a security boundary). */
static uint64_t path_hash(const char *path)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	return h;
}

static int mkdir_each(const char *const dirs[], size_t n, mode_t mode)
{
	for (size_t i = 0; i < n; i++)
		if (mkdir(dirs[i], mode) && errno != EEXIST)
			return -1;
	return 0;
}

/* For people reading /run: which store a run root belongs to. */
static void name_the_store(const char *run_root, const char *store)
{
	cleanup_free char *link = rt_path_join(run_root, "store");
	if (link && symlink(store, link) < 0)
		return; /* (nothing depends on it) */
}

/* A run root whose store is gone (a deleted test store, say) and that holds no container is removed when
 * the next one is made; rmdir only, so that one still in use stays. */
static void sweep_orphan_run_roots(void)
{
	DIR *d = opendir(CTR_RUN_ROOTS);
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		char link[PATH_MAX], store[PATH_MAX];
		if (e->d_name[0] == '.' ||
		    (size_t)snprintf(link, sizeof(link), CTR_RUN_ROOTS "/%s/store", e->d_name) >= sizeof(link))
			continue;
		ssize_t n = readlink(link, store, sizeof(store) - 1);
		if (n <= 0)
			continue;
		store[n] = '\0';
		if (!access(store, F_OK) || errno != ENOENT)
			continue;
		static const char *const subdirs[] = { "containers", "runtime" };
		bool empty = true;
		for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
			char sub[PATH_MAX];
			snprintf(sub, sizeof(sub), CTR_RUN_ROOTS "/%s/%s", e->d_name, subdirs[i]);
			empty = empty && (!rmdir(sub) || errno == ENOENT);
		}
		if (empty && !unlink(link)) {
			snprintf(link, sizeof(link), CTR_RUN_ROOTS "/%s", e->d_name);
			rmdir(link);
		}
	}
	closedir(d);
}

/* The run root: what lives only while containers run (the runtime's state, their /etc files). On /run, a
 * tmpfs: a file made there costs microseconds where a disk that has just freed inodes takes a quarter of a
 * millisecond, and a reboot, which ends every container, empties it (where /run is on a disk, mkdir_on_tmpfs
 * mounts one). $VIRTUS_RUNROOT, else
 * /run/virtus-stores/<hash of the store's real path> (its "store" link names the store), else, where /run
 * cannot be written, <root>/run. */
static char *run_root_of(const char *root)
{
	const char *env = getenv("VIRTUS_RUNROOT");
	char *out = NULL;
	if (env && *env) {
		out = strdup(env);
		return out && mkdir(out, 0700) && errno != EEXIST ? (free(out), NULL) : out;
	}
	cleanup_free char *real = realpath(root, NULL);
	if (real && asprintf(&out, CTR_RUN_ROOTS "/%016llx", (unsigned long long)path_hash(real)) >= 0) {
		if (!mkdir_on_tmpfs(CTR_RUN_ROOTS, 0711) && !mkdir(out, 0700)) {
			sweep_orphan_run_roots();
			name_the_store(out, real);
			return out;
		}
		if (errno == EEXIST)
			return out;
		free(out);
	}
	out = rt_path_join(root, "run");
	return out && mkdir(out, 0700) && errno != EEXIST ? (free(out), NULL) : out;
}

int ctr_store_init(struct ctr_store *s, const char *root, vt_err *err)
{
	*s = (struct ctr_store){ 0 };
	if (mkdir(root, 0711) && errno != EEXIST)
		return vt_fail_errno(err, errno, "cannot create the store at %s", root);
	s->root = strdup(root);
	s->containers = rt_path_join(root, "containers");
	s->run_root = run_root_of(root);
	if (!s->run_root) {
		int e = errno;
		ctr_store_clear(s);
		return vt_fail_errno(err, e, "cannot create the run root of the store at %s", root);
	}
	s->run = rt_path_join(s->run_root, "runtime");
	s->run_ctrs = rt_path_join(s->run_root, "containers");
	if (!s->root || !s->containers || !s->run || !s->run_ctrs) {
		ctr_store_clear(s);
		return vt_fail_errno(err, ENOMEM, "store");
	}
	const char *const dirs[] = { s->containers, s->run, s->run_ctrs };
	if (mkdir_each(dirs, ARRAY_SIZE(dirs), 0700)) {
		int e = errno;
		ctr_store_clear(s);
		return vt_fail_errno(err, e, "cannot create the store at %s", root);
	}
	return 0;
}

void ctr_store_clear(struct ctr_store *s)
{
	free(s->root);
	free(s->containers);
	free(s->run_root);
	free(s->run);
	free(s->run_ctrs);
	*s = (struct ctr_store){ 0 };
}

char *ctr_run_path(const struct ctr_store *s, const char *id, const char *file)
{
	char *out;
	return asprintf(&out, "%s/%s%s%s", s->run_ctrs, id, file ? "/" : "", file ? file : "") < 0 ? NULL : out;
}

char *ctr_rootfs(const struct ctr_store *s, const char *id)
{
	return ctr_run_path(s, id, "rootfs");
}

int ctr_run_dir_make(const struct ctr_store *s, const char *id, vt_err *err)
{
	cleanup_free char *dir = ctr_run_path(s, id, NULL);
	if (!dir)
		return vt_fail_errno(err, ENOMEM, "run dir");
	if (mkdir(dir, 0700) && errno != EEXIST)
		return vt_fail_errno(err, errno, "cannot create %s", dir);
	return 0;
}

void ctr_run_dir_remove(const struct ctr_store *s, const char *id)
{
	cleanup_free char *dir = ctr_run_path(s, id, NULL);
	DIR *d = dir ? opendir(dir) : NULL;
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.') /* (rootfs: an empty dir once unmounted) */
			unlinkat(dirfd(d), e->d_name, e->d_type == DT_DIR ? AT_REMOVEDIR : 0);
	closedir(d);
	rmdir(dir);
}

char *ctr_dir(const struct ctr_store *s, const char *id)
{
	return rt_path_join(s->containers, id);
}

char *ctr_path(const struct ctr_store *s, const char *id, const char *file)
{
	char *out;
	return asprintf(&out, "%s/%s/%s", s->containers, id, file) < 0 ? NULL : out;
}

int ctr_record_load(const struct ctr_store *s, const char *id, json_object **out, vt_err *err)
{
	cleanup_free char *path = ctr_path(s, id, RECORD_FILE);
	cleanup_free char *text = NULL;
	size_t len;
	if (!path)
		return vt_fail_errno(err, ENOMEM, "record");
	if (read_file(path, RECORD_MAX, (void **)&text, &len, err))
		return vt_err_prefix(err, "container %.12s", id);
	*out = rt_json_parse(text, len);
	if (!*out || !json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		return vt_fail(err, "container %.12s: its record %s is not valid JSON", id, path);
	}
	return 0;
}

int ctr_record_save(const struct ctr_store *s, const char *id, json_object *rec, vt_err *err)
{
	cleanup_free char *path = ctr_path(s, id, RECORD_FILE);
	if (!path)
		return vt_fail_errno(err, ENOMEM, "record");
	/* a --rm container's record goes with it: no need to outlive a crash */
	bool durable = !json_object_get_boolean(json_object_object_get(rec, "AutoRemove"));
	return rt_write_file_atomic(path, json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PRETTY), durable, err);
}

/* The lock is the directory itself (flock works on any file): no lock file to create and remove. */
int ctr_lock(const struct ctr_store *s, const char *id, vt_err *err)
{
	cleanup_free char *path = ctr_dir(s, id);
	int fd = path ? open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (fd < 0)
		return vt_fail_errno(err, errno, "container %.12s: cannot open its lock", id);
	while (flock(fd, LOCK_EX) && errno == EINTR)
		;
	return fd;
}

void ctr_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static bool is_id(const char *s)
{
	return strlen(s) == CTR_ID_LEN && strspn(s, "0123456789abcdef") == CTR_ID_LEN;
}

struct entry {
	char *id;
	char *created;
};

static int by_created(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->created, y->created);
	return c ? c : strcmp(x->id, y->id);
}

int ctr_list(const struct ctr_store *s, char ***ids, vt_err *err)
{
	DIR *d = opendir(s->containers);
	if (!d)
		return vt_fail_errno(err, errno, "cannot read %s", s->containers);
	struct entry *e = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		json_object *rec;
		if (!is_id(de->d_name) || ctr_record_load(s, de->d_name, &rec, NULL))
			continue;
		struct entry *ne = realloc(e, (n + 1) * sizeof(*e));
		if (!ne) {
			json_object_put(rec);
			break;
		}
		e = ne;
		e[n].id = strdup(de->d_name);
		e[n].created = strdup(ctr_rec_str(rec, "Created"));
		n++;
		json_object_put(rec);
	}
	closedir(d);
	if (n)
		qsort(e, n, sizeof(*e), by_created);
	char **out = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		if (out)
			out[i] = e[i].id;
		else
			free(e[i].id);
		free(e[i].created);
	}
	free(e);
	if (!out)
		return vt_fail_errno(err, ENOMEM, "listing containers");
	*ids = out;
	return 0;
}

int ctr_lookup(const struct ctr_store *s, const char *ref, char id[CTR_ID_LEN + 1], vt_err *err)
{
	bool exact;
	return ctr_lookup_exact(s, ref, id, &exact, err);
}

int ctr_lookup_exact(const struct ctr_store *s, const char *ref, char id[CTR_ID_LEN + 1], bool *exact,
		     vt_err *err)
{
	char **ids;
	if (!*ref)
		return vt_fail(err, "no container given");
	if (ctr_list(s, &ids, err))
		return -1;
	size_t matches = 0, len = strlen(ref);
	bool by_name = false;
	for (size_t i = 0; ids[i]; i++) {
		json_object *rec;
		if (ctr_record_load(s, ids[i], &rec, NULL))
			continue;
		bool named = !strcmp(ctr_rec_str(rec, "Name"), ref);
		json_object_put(rec);
		if (named || !strcmp(ids[i], ref)) {
			snprintf(id, CTR_ID_LEN + 1, "%s", ids[i]);
			by_name = true;
			break;
		}
		if (!strncmp(ids[i], ref, len)) {
			snprintf(id, CTR_ID_LEN + 1, "%s", ids[i]);
			matches++;
		}
	}
	ctr_strv_free(ids);
	*exact = by_name;
	if (by_name || matches == 1)
		return 0;
	if (matches > 1)
		return vt_fail(err, "'%s' matches more than one container: give more of the id", ref);
	return vt_fail(err, "no such container: %s", ref);
}

const char *ctr_rec_str(json_object *rec, const char *key)
{
	json_object *v;
	if (!rec || !json_object_object_get_ex(rec, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

long long ctr_rec_int(json_object *rec, const char *key)
{
	json_object *v;
	if (!rec || !json_object_object_get_ex(rec, key, &v))
		return 0;
	return (long long)json_object_get_int64(v);
}

void ctr_rec_set_str(json_object *rec, const char *key, const char *v)
{
	json_object_object_add(rec, key, json_object_new_string(v ? v : ""));
}

void ctr_rec_set_int(json_object *rec, const char *key, long long v)
{
	json_object_object_add(rec, key, json_object_new_int64(v));
}

bool ctr_monitor_alive(json_object *rec)
{
	pid_t pid = (pid_t)ctr_rec_int(rec, "MonitorPid");
	return pid > 0 && rt_pid_alive(pid, (unsigned long long)ctr_rec_int(rec, "MonitorStartTime"));
}

const char *ctr_status(json_object *rec)
{
	const char *s = ctr_rec_str(rec, "State");
	if ((!strcmp(s, "running") || !strcmp(s, "paused") || !strcmp(s, "stopping")) && !ctr_monitor_alive(rec))
		return "exited";
	if (!strcmp(s, "stopping"))
		return "running";
	return *s ? s : "unknown";
}
