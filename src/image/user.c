/* img_resolve_user (image.h), for build's USER and COPY --chown and for run/exec -u: names looked up in the image's own /etc/passwd and /etc/group (never the host's, and
 * never through NSS, which would load the host's modules). The files are opened with RESOLVE_IN_ROOT, so a
 * symlink in the image cannot point the lookup at a host file. */
#include "image/image.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

static FILE *open_in_root(const char *root_dir, const char *path)
{
	if (!root_dir) /* no root file system to look in (a caller without one): only numbers resolve */
		return NULL;
	cleanup_close int root = open(root_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return NULL;
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, "r");
	if (!f)
		close(fd);
	return f;
}

static bool parse_id(const char *s, unsigned long *out)
{
	uint64_t v;
	if (parse_uint(s, 0, UINT32_MAX - 1, &v))
		return false;
	*out = (unsigned long)v;
	return true;
}

/* Find the entry whose field `key_field` (0 = name, 2 = id) equals key in a passwd/group-format file;
 * fills the numeric fields 2 and (passwd only) 3. Returns 1 if found, 0 if not, -1 if the file is missing. */
static int lookup(const char *root_dir, const char *file, int key_field, const char *key, unsigned long *id,
		  unsigned long *second)
{
	FILE *f = open_in_root(root_dir, file);
	if (!f)
		return -1;
	char line[1024];
	int found = 0;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		char *fields[4] = { 0 }, *p = line;
		for (int i = 0; i < 4; i++) {
			fields[i] = strsep(&p, ":");
			if (!fields[i])
				break;
		}
		if (!fields[2] || strcmp(fields[key_field], key) || !parse_id(fields[2], id))
			continue;
		found = !second || (fields[3] && parse_id(fields[3], second));
	}
	fclose(f);
	return found;
}

static int resolve_group(const char *root_dir, const char *group, gid_t *gid, vt_err *err)
{
	unsigned long id;
	if (parse_id(group, &id)) {
		*gid = (gid_t)id;
		return 0;
	}
	int rc = lookup(root_dir, "/etc/group", 0, group, &id, NULL);
	if (rc < 0)
		return vt_fail(err, "group '%s' not found: the image has no /etc/group (use a number)", group);
	if (!rc)
		return vt_fail(err, "group '%s' not found: it is not in the image's /etc/group", group);
	*gid = (gid_t)id;
	return 0;
}

int img_resolve_user(const char *root_dir, const char *spec, uid_t *uid, gid_t *gid, vt_err *err)
{
	cleanup_free char *user = strdup(spec);
	if (!user)
		return vt_fail_errno(err, ENOMEM, "user");
	char *group = strchr(user, ':');
	if (group)
		*group++ = 0;
	if (!*user || (group && !*group))
		return vt_fail(err, "'%s' is not USER[:GROUP]", spec);
	unsigned long id, primary = 0;
	if (parse_id(user, &id)) {
		/* A number needs no entry; its primary group comes from the entry if there is one, else 0. */
		char key[16];
		snprintf(key, sizeof(key), "%lu", id);
		unsigned long ignored;
		if (lookup(root_dir, "/etc/passwd", 2, key, &ignored, &primary) != 1)
			primary = 0;
	} else {
		int rc = lookup(root_dir, "/etc/passwd", 0, user, &id, &primary);
		if (rc < 0)
			return vt_fail(err, "user '%s' not found: the image has no /etc/passwd (use a number)", user);
		if (!rc)
			return vt_fail(err, "user '%s' not found: it is not in the image's /etc/passwd", user);
	}
	*uid = (uid_t)id;
	*gid = (gid_t)primary;
	return group ? resolve_group(root_dir, group, gid, err) : 0;
}
