/* The container's /etc/resolv.conf, /etc/hosts and /etc/hostname: files of its own in its run dir (on /run),
 * bound over the rootfs's (config.json mounts, so the runtime resolves the destinations inside the rootfs and
 * creates a missing one there). Written at every launch: the address may change between runs. The run dir
 * is there by then: ctr_mount_rootfs makes it with the mount point. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container/ctr_int.h"
#include "lib/util.h"
#include "runtime/rt.h"

static const char *const etc_files[] = { "resolv.conf", "hosts", "hostname" };

void ctr_etc_add_mounts(json_object *spec, const char *run_dir)
{
	json_object *mounts = NULL;
	if (!json_object_object_get_ex(spec, "mounts", &mounts))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(etc_files); i++) {
		char src[4096], dst[64];
		snprintf(src, sizeof(src), "%s/%s", run_dir, etc_files[i]);
		snprintf(dst, sizeof(dst), "/etc/%s", etc_files[i]);
		json_object *m = json_object_new_object();
		json_object_object_add(m, "destination", json_object_new_string(dst));
		json_object_object_add(m, "type", json_object_new_string("bind"));
		json_object_object_add(m, "source", json_object_new_string(src));
		json_object *opts = json_object_new_array();
		json_object_array_add(opts, json_object_new_string("bind"));
		json_object_array_add(opts, json_object_new_string("rw"));
		json_object_object_add(m, "options", opts);
		json_object_array_add(mounts, m);
	}
}

/* A nameserver on 127.0.0.0/8 answers on the host's loopback, which a namespace of its own cannot reach. */
static bool loopback_nameserver(const char *line)
{
	char addr[64];
	return sscanf(line, " nameserver %63s", addr) == 1 && !strncmp(addr, "127.", 4);
}

static bool is_nameserver(const char *line)
{
	char addr[64];
	return sscanf(line, " nameserver %63s", addr) == 1;
}

/* The host's resolv.conf for the container's network mode (see ctr_int.h). */
static char *resolv_conf(enum cnet_mode mode)
{
	char *out = NULL, line[1024];
	size_t len = 0, usable = 0;
	FILE *mem = open_memstream(&out, &len);
	FILE *f = fopen("/etc/resolv.conf", "re");
	if (!mem) {
		if (f)
			fclose(f);
		return NULL;
	}
	while (f && fgets(line, sizeof(line), f)) {
		if (mode != CNET_HOST && loopback_nameserver(line))
			continue;
		usable += is_nameserver(line);
		fputs(line, mem);
		if (!strchr(line, '\n'))
			fputc('\n', mem);
	}
	if (f)
		fclose(f);
	if (!usable && mode == CNET_SLIRP)
		fprintf(mem, "nameserver %s\n", CNET_SLIRP_DNS);
	fclose(mem);
	return out;
}

static char *hosts_file(const char *addr, const char *hostname)
{
	char *out = NULL;
	if (*addr)
		return asprintf(&out, "127.0.0.1\tlocalhost\n::1\tlocalhost\n%s\t%s\n", addr, hostname) < 0 ? NULL : out;
	return asprintf(&out, "127.0.0.1\tlocalhost %s\n::1\tlocalhost\n", hostname) < 0 ? NULL : out;
}

static int write_one(const struct ctr_store *s, const char *id, const char *file, char *text, vt_err *err)
{
	cleanup_free char *data = text;
	cleanup_free char *path = ctr_run_path(s, id, file);
	if (!data || !path)
		return vt_fail_errno(err, ENOMEM, "/etc/%s", file);
	return rt_write_file_atomic(path, data, false, err); /* made again at every start */
}

int ctr_etc_write(const struct ctr_launch *l, vt_err *err)
{
	char hostname[CTR_SHORT_ID_LEN + 2], *name = NULL;
	snprintf(hostname, sizeof(hostname), "%.12s", l->id);
	if (asprintf(&name, "%s\n", hostname) < 0)
		name = NULL;
	if (write_one(l->store, l->id, "resolv.conf", resolv_conf(l->net.mode), err) ||
	    write_one(l->store, l->id, "hosts", hosts_file(l->lease.addr, hostname), err) ||
	    write_one(l->store, l->id, "hostname", name, err))
		return vt_err_prefix(err, "the container's /etc files");
	return 0;
}
