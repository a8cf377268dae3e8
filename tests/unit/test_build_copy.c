/* The build's COPY digest (what the cache key sees of the context) and the user lookup in an image's own
 * /etc/passwd. Plain temp directories: no root, no store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/build_internal.h"
#include "runtime/rt.h"

struct fixture {
	char dir[64];
	char ctx[96], root[96];
};

static void put(const char *dir, const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void make_dir(const char *dir, const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(mkdir(path, 0755), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/vt-build-copy-XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(f->ctx, sizeof(f->ctx), "%s/ctx", f->dir);
	snprintf(f->root, sizeof(f->root), "%s/root", f->dir);
	mkdir(f->ctx, 0755);
	mkdir(f->root, 0755);
	make_dir(f->ctx, "dir");
	make_dir(f->ctx, "dir/sub");
	put(f->ctx, "a.txt", "alpha\n");
	put(f->ctx, "b.txt", "beta\n");
	put(f->ctx, "dir/one", "1\n");
	put(f->ctx, "dir/sub/debug.log", "noise\n");
	char link[256];
	snprintf(link, sizeof(link), "%s/dir/link", f->ctx);
	if (symlink("one", link))
		return -1;
	make_dir(f->root, "etc");
	put(f->root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"
				   "app:x:1000:1001::/home/app:/bin/sh\n");
	put(f->root, "etc/group", "root:x:0:\nnogroup:x:65534:\nstaff:x:50:\n");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rt_remove_tree(f->dir);
	free(f);
	return 0;
}

static int digest(const struct fixture *f, const char *const *sources, size_t n, const char *dest,
		  const struct build_ignore *ig, char hex[65], vt_err *err)
{
	struct build_copy c = { .context_dir = f->ctx, .ignore = ig, .sources = sources, .n_sources = n,
				.dest = dest, .dest_is_dir = dest[strlen(dest) - 1] == '/' };
	return build_copy_digest(&c, hex, err);
}

static void test_digest_follows_content(void **state)
{
	struct fixture *f = *state;
	static const char *const dir[] = { "dir" };
	char d1[65], d2[65], d3[65];
	vt_err err = { 0 };
	assert_int_equal(digest(f, dir, 1, "/app/", NULL, d1, &err), 0);
	assert_int_equal(digest(f, dir, 1, "/app/", NULL, d2, &err), 0);
	assert_string_equal(d1, d2); /* deterministic */
	assert_int_equal(strlen(d1), 64);

	put(f->ctx, "dir/one", "2\n"); /* same size, other bytes */
	assert_int_equal(digest(f, dir, 1, "/app/", NULL, d3, &err), 0);
	assert_string_not_equal(d1, d3);

	char path[256];
	snprintf(path, sizeof(path), "%s/dir/one", f->ctx);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(digest(f, dir, 1, "/app/", NULL, d2, &err), 0);
	assert_string_not_equal(d2, d3); /* the mode counts */

	/* An excluded file is not read: changing it changes nothing. */
	struct build_ignore *ig;
	assert_int_equal(build_ignore_parse("**/*.log\n", 9, &ig, &err), 0);
	assert_int_equal(digest(f, dir, 1, "/app/", ig, d1, &err), 0);
	put(f->ctx, "dir/sub/debug.log", "other noise, longer\n");
	assert_int_equal(digest(f, dir, 1, "/app/", ig, d3, &err), 0);
	assert_string_equal(d1, d3);
	assert_int_equal(digest(f, dir, 1, "/app/", NULL, d2, &err), 0);
	assert_string_not_equal(d2, d3);
	build_ignore_free(ig);
}

static void test_sources(void **state)
{
	struct fixture *f = *state;
	char d1[65], d2[65];
	vt_err err = { 0 };
	static const char *const glob[] = { "*.txt" };
	static const char *const both[] = { "a.txt", "b.txt" };
	assert_int_equal(digest(f, glob, 1, "/x/", NULL, d1, &err), 0);
	assert_int_equal(digest(f, both, 2, "/x/", NULL, d2, &err), 0);
	assert_string_equal(d1, d2); /* the wildcard names the same files in the same order */

	static const char *const missing[] = { "nope.txt" };
	assert_int_equal(digest(f, missing, 1, "/x", NULL, d1, &err), -1);
	assert_non_null(strstr(err.msg, "'nope.txt' is not in the build context"));

	static const char *const outside[] = { "dir/../../etc/passwd" };
	assert_int_equal(digest(f, outside, 1, "/x", NULL, d1, &err), -1);
	assert_non_null(strstr(err.msg, "outside the build context"));

	static const char *const none[] = { "*.none" };
	assert_int_equal(digest(f, none, 1, "/x/", NULL, d1, &err), -1);
	assert_non_null(strstr(err.msg, "matches no file"));

	static const char *const url[] = { "https://example.org/x.tar" };
	assert_int_equal(digest(f, url, 1, "/x/", NULL, d1, &err), -1);
	assert_non_null(strstr(err.msg, "URL sources are not supported"));

	assert_int_equal(digest(f, both, 2, "/x", NULL, d1, &err), -1);
	assert_non_null(strstr(err.msg, "must end with '/'"));

	struct build_ignore *ig;
	assert_int_equal(build_ignore_parse("b.txt\n", 6, &ig, &err), 0);
	static const char *const excluded[] = { "b.txt" };
	assert_int_equal(digest(f, excluded, 1, "/x", ig, d1, &err), -1);
	assert_non_null(strstr(err.msg, "excluded"));
	build_ignore_free(ig);
}

static void test_resolve_user(void **state)
{
	struct fixture *f = *state;
	uid_t uid;
	gid_t gid;
	vt_err err = { 0 };
	assert_int_equal(img_resolve_user(f->root, "nobody", &uid, &gid, &err), 0);
	assert_int_equal(uid, 65534);
	assert_int_equal(gid, 65534);
	assert_int_equal(img_resolve_user(f->root, "app", &uid, &gid, &err), 0);
	assert_int_equal(uid, 1000);
	assert_int_equal(gid, 1001); /* the primary group from passwd */
	assert_int_equal(img_resolve_user(f->root, "app:staff", &uid, &gid, &err), 0);
	assert_int_equal(gid, 50);
	assert_int_equal(img_resolve_user(f->root, "1000", &uid, &gid, &err), 0);
	assert_int_equal(gid, 1001);
	assert_int_equal(img_resolve_user(f->root, "4242:7", &uid, &gid, &err), 0);
	assert_int_equal(uid, 4242);
	assert_int_equal(gid, 7);
	assert_int_equal(img_resolve_user(f->root, "4242", &uid, &gid, &err), 0);
	assert_int_equal(gid, 0); /* no entry: group 0 */

	assert_int_equal(img_resolve_user(f->root, "ghost", &uid, &gid, &err), -1);
	assert_non_null(strstr(err.msg, "user 'ghost' not found: it is not in the image's /etc/passwd"));
	assert_int_equal(img_resolve_user(f->root, "app:ghosts", &uid, &gid, &err), -1);
	assert_non_null(strstr(err.msg, "group 'ghosts'"));
	assert_int_equal(img_resolve_user(f->root, "app:", &uid, &gid, &err), -1);

	/* An absolute symlink in the image resolves inside the image, never to the host's /etc/passwd. */
	char path[256];
	snprintf(path, sizeof(path), "%s/etc/passwd", f->root);
	unlink(path);
	assert_int_equal(symlink("/etc/passwd.image", path), 0);
	assert_int_equal(img_resolve_user(f->root, "root", &uid, &gid, &err), -1);
	assert_non_null(strstr(err.msg, "has no /etc/passwd"));
	put(f->root, "etc/passwd.image", "root:x:7:8::/:/bin/sh\n");
	assert_int_equal(img_resolve_user(f->root, "root", &uid, &gid, &err), 0);
	assert_int_equal(uid, 7);
	assert_int_equal(gid, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_digest_follows_content, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_user, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
