/* `virtus image ...`: the image store's commands. Each parses its options, opens the store, calls image/. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "image/image.h"

static const char image_usage[] =
	"usage: virtus [--root DIR] image <command> [options]\n"
	"\n"
	"  import TAR [NAME]       a root file system tarball becomes a one-layer image\n"
	"  ls [-q]                 list the images\n"
	"  tag IMAGE NAME...       give an image more names\n"
	"  load -i FILE            load what 'podman save' wrote (oci-archive or docker-archive)\n"
	"  save -o FILE [--format oci-archive|docker-archive] IMAGE\n"
	"                          write an image archive that podman and docker load\n"
	"  rm IMAGE...             remove images (or one of an image's several names)\n"
	"  history IMAGE           the steps that made an image\n"
	"  inspect IMAGE...        describe images as JSON\n"
	"\n"
	"'virtus image COMMAND --help' describes a command. The store is DIR, else $VIRTUS_ROOT, else "
	IMG_DEFAULT_ROOT ".\n";

static const char import_usage[] =
	"usage: virtus image import TAR [NAME]\n"
	"\n"
	"Make a one-layer image of a root file system tarball (plain, gzip or zstd) and print its id.\n"
	"NAME defaults to none; 'site' means localhost/site:latest.\n";
static const char ls_usage[] =
	"usage: virtus image ls [-q|--quiet] [--no-trunc]\n"
	"\n"
	"List the images: REPOSITORY TAG IMAGE ID CREATED SIZE.\n"
	"  -q, --quiet   only the image ids\n"
	"  --no-trunc    full image ids\n";
static const char tag_usage[] =
	"usage: virtus image tag IMAGE NAME...\n"
	"\n"
	"Give IMAGE (a name or an id) the names NAME (a name held by another image moves to this one).\n";

static const char load_usage[] =
	"usage: virtus image load -i|--input FILE\n"
	"\n"
	"Load the images of an archive written by 'podman save', 'docker save' or 'virtus image save'\n"
	"(oci-archive or docker-archive, layers plain, gzip or zstd). Every digest is checked; a damaged\n"
	"archive is refused and leaves the store as it was.\n"
	"  -i, --input FILE   the archive\n";

static const char save_usage[] =
	"usage: virtus image save -o|--output FILE [--format oci-archive|docker-archive] IMAGE\n"
	"\n"
	"Write IMAGE as an archive in the shape Docker 25+ writes: an OCI image layout that also carries\n"
	"Docker's manifest.json, so 'podman load' and 'docker load' both read it. Layers are gzip-compressed.\n"
	"  -o, --output FILE   the archive to write (replaced only once it is complete)\n"
	"  --format FORMAT     oci-archive or docker-archive (default): whose metadata comes first\n";
static const char rm_usage[] =
	"usage: virtus image rm IMAGE...\n"
	"\n"
	"Remove images. A name of an image that has several names is removed alone (the image stays);\n"
	"otherwise the image goes, with the layers no other image uses. An image that a container uses\n"
	"is not removed (the message names the container).\n";
static const char history_usage[] =
	"usage: virtus image history [--no-trunc] IMAGE\n"
	"\n"
	"The history of IMAGE, newest first: IMAGE CREATED CREATED BY SIZE COMMENT.\n";
static const char inspect_usage[] =
	"usage: virtus image inspect IMAGE...\n"
	"\n"
	"Print a JSON array describing the images (Id, RepoTags, Created, Config, RootFS, History, Size).\n";

static int usage_error(const char *text, const char *fmt, const char *arg)
{
	fputs("virtus: ", stderr);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	fputs(text, stderr);
	return EXIT_USAGE;
}

static int fail(const char *what, const vt_err *err)
{
	fprintf(stderr, "virtus: %s: %s\n", what, err->msg);
	return 1;
}

/* Options common to every subcommand: -h/--help. Returns optind, or -1 when it printed usage (exit *rc). */
static int parse(int argc, char **argv, const char *text, const char *shortopts, const struct option *longopts,
		 int (*on_opt)(int c, const char *arg, void *ctx), void *ctx, int *rc)
{
	optind = 0;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(text, stdout);
			*rc = 0;
			return -1;
		}
		if (c == '?' || c == ':' || !on_opt || on_opt(c, optarg, ctx) < 0) {
			*rc = usage_error(text, "bad option '%s'", argv[optind - 1 > 0 ? optind - 1 : 1]);
			return -1;
		}
	}
	return optind;
}

static int open_store(const struct cli_globals *g, struct img_store **s)
{
	vt_err err = { 0 };
	if (img_store_open(img_default_root(g->root), s, &err) < 0)
		return fail("opening the image store", &err);
	return 0;
}

static const struct option help_only[] = { { "help", no_argument, NULL, 'h' }, { 0 } };

static int image_import(const struct cli_globals *g, int argc, char **argv)
{
	int rc;
	int i = parse(argc, argv, import_usage, "+h", help_only, NULL, NULL, &rc);
	if (i < 0)
		return rc;
	if (argc - i < 1 || argc - i > 2)
		return usage_error(import_usage, "%s", "import needs TAR and at most one NAME");
	struct img_store *s;
	if (open_store(g, &s))
		return 1;
	vt_err err = { 0 };
	char id[IMG_ID_LEN + 1];
	rc = img_import(s, argv[i], argc - i == 2 ? argv[i + 1] : NULL, id, &err) < 0 ? fail("image import", &err) : 0;
	if (rc == 0)
		printf("%s\n", id + 7);
	img_store_close(s);
	return rc;
}

struct ls_opts {
	bool quiet, no_trunc;
};

static int ls_opt(int c, const char *arg, void *ctx)
{
	(void)arg;
	struct ls_opts *o = ctx;
	if (c == 'q')
		o->quiet = true;
	else if (c == 'T')
		o->no_trunc = true;
	else
		return -1;
	return 0;
}

static void human_size(unsigned long long b, char *out, size_t len)
{
	/* podman prints SI units with three significant digits */
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB" };
	double v = (double)b;
	size_t u = 0;
	while (v >= 1000 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1000;
		u++;
	}
	snprintf(out, len, u ? "%.3g %s" : "%.0f %s", v, units[u]);
}

static void human_age(long long created, char *out, size_t len)
{
	long long d = (long long)time(NULL) - created;
	if (!created)
		snprintf(out, len, "unknown");
	else if (d < 60)
		snprintf(out, len, "%lld seconds ago", d < 1 ? 1 : d);
	else if (d < 3600)
		snprintf(out, len, "%lld minutes ago", d / 60);
	else if (d < 86400)
		snprintf(out, len, "%lld hours ago", d / 3600);
	else
		snprintf(out, len, "%lld days ago", d / 86400);
}

static void ls_row(const struct img_summary *im, const char *name, bool no_trunc)
{
	char repo[512] = "<none>", tag[128] = "<none>", size[32], age[48];
	if (name) {
		const char *colon = strrchr(name, ':');
		snprintf(repo, sizeof(repo), "%.*s", (int)(colon ? colon - name : (long)strlen(name)), name);
		snprintf(tag, sizeof(tag), "%s", colon ? colon + 1 : "latest");
	}
	human_size(im->size, size, sizeof(size));
	human_age(im->created, age, sizeof(age));
	printf("%-40s %-12s %-*.*s %-16s %s\n", repo, tag, no_trunc ? 71 : 14, no_trunc ? 71 : 12,
	       no_trunc ? im->id : im->id + 7, age, size);
}

static int image_ls(const struct cli_globals *g, int argc, char **argv)
{
	static const struct option longopts[] = { { "help", no_argument, NULL, 'h' },
						   { "quiet", no_argument, NULL, 'q' },
						   { "no-trunc", no_argument, NULL, 'T' },
						   { 0 } };
	struct ls_opts o = { 0 };
	int rc;
	int i = parse(argc, argv, ls_usage, "+hq", longopts, ls_opt, &o, &rc);
	if (i < 0)
		return rc;
	if (i != argc)
		return usage_error(ls_usage, "unexpected argument '%s'", argv[i]);
	struct img_store *s;
	if (open_store(g, &s))
		return 1;
	vt_err err = { 0 };
	struct img_summary *l;
	size_t n;
	rc = img_list(s, &l, &n, &err) < 0 ? fail("image ls", &err) : 0;
	img_store_close(s);
	if (rc)
		return rc;
	if (!o.quiet)
		printf("%-40s %-12s %-14s %-16s %s\n", "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE");
	for (size_t k = 0; k < n; k++) {
		if (o.quiet)
			printf("%.*s\n", o.no_trunc ? 64 : 12, l[k].id + 7);
		else if (!l[k].n_names)
			ls_row(&l[k], NULL, o.no_trunc);
		for (size_t j = 0; !o.quiet && j < l[k].n_names; j++)
			ls_row(&l[k], l[k].names[j], o.no_trunc);
	}
	img_list_free(l, n);
	return 0;
}

static int image_tag(const struct cli_globals *g, int argc, char **argv)
{
	int rc;
	int i = parse(argc, argv, tag_usage, "+h", help_only, NULL, NULL, &rc);
	if (i < 0)
		return rc;
	if (argc - i < 2)
		return usage_error(tag_usage, "%s", "tag needs IMAGE and at least one NAME");
	struct img_store *s;
	if (open_store(g, &s))
		return 1;
	vt_err err = { 0 };
	rc = 0;
	for (int k = i + 1; k < argc && !rc; k++)
		if (img_tag(s, argv[i], argv[k], &err) < 0)
			rc = fail("image tag", &err);
	img_store_close(s);
	return rc;
}

static int load_opt(int c, const char *arg, void *ctx)
{
	if (c != 'i')
		return -1;
	*(const char **)ctx = arg;
	return 0;
}

static int image_load(const struct cli_globals *g, int argc, char **argv)
{
	static const struct option longopts[] = { { "help", no_argument, NULL, 'h' },
						   { "input", required_argument, NULL, 'i' },
						   { 0 } };
	const char *input = NULL;
	int rc;
	int i = parse(argc, argv, load_usage, "+hi:", longopts, load_opt, &input, &rc);
	if (i < 0)
		return rc;
	if (!input || i != argc)
		return usage_error(load_usage, "%s", "load needs -i FILE and nothing else");
	struct img_store *s;
	if (open_store(g, &s))
		return 1;
	vt_err err = { 0 };
	char **names;
	size_t n;
	rc = img_load(s, input, &names, &n, &err) < 0 ? fail("image load", &err) : 0;
	img_store_close(s);
	for (size_t k = 0; rc == 0 && k < n; k++)
		printf("Loaded image: %s\n", names[k]);
	if (rc == 0)
		img_strings_free(names, n);
	return rc;
}

struct save_opts {
	const char *output;
	enum img_archive_format fmt;
	bool bad_format;
};

static int save_opt(int c, const char *arg, void *ctx)
{
	struct save_opts *o = ctx;
	if (c == 'o')
		o->output = arg;
	else if (c == 'F' && !strcmp(arg, "oci-archive"))
		o->fmt = IMG_FORMAT_OCI_ARCHIVE;
	else if (c == 'F' && !strcmp(arg, "docker-archive"))
		o->fmt = IMG_FORMAT_DOCKER_ARCHIVE;
	else
		return -1;
	return 0;
}

static int image_save(const struct cli_globals *g, int argc, char **argv)
{
	static const struct option longopts[] = { { "help", no_argument, NULL, 'h' },
						   { "output", required_argument, NULL, 'o' },
						   { "format", required_argument, NULL, 'F' },
						   { 0 } };
	struct save_opts o = { .fmt = IMG_FORMAT_DOCKER_ARCHIVE };
	int rc;
	int i = parse(argc, argv, save_usage, "+ho:", longopts, save_opt, &o, &rc);
	if (i < 0)
		return rc;
	if (!o.output || argc - i != 1)
		return usage_error(save_usage, "%s", "save needs -o FILE and one IMAGE");
	struct img_store *s;
	if (open_store(g, &s))
		return 1;
	vt_err err = { 0 };
	rc = img_save(s, argv[i], o.output, o.fmt, &err) < 0 ? fail("image save", &err) : 0;
	img_store_close(s);
	return rc;
}

static int image_rm(const struct cli_globals *g, int argc, char **argv)
{
	int rc;
	int i = parse(argc, argv, rm_usage, "+h", help_only, NULL, NULL, &rc);
	if (i < 0)
		return rc;
	if (i == argc)
		return usage_error(rm_usage, "%s", "rm needs at least one IMAGE");
	struct img_store *s;
	if (open_store(g, &s))
		return 1;
	rc = 0;
	for (; i < argc; i++) {
		vt_err err = { 0 };
		bool untagged;
		char id[IMG_ID_LEN + 1];
		if (img_remove(s, argv[i], &untagged, id, &err) < 0)
			rc = fail("image rm", &err);
		else
			printf("%s: %s\n", untagged ? "Untagged" : "Deleted", untagged ? argv[i] : id + 7);
	}
	img_store_close(s);
	return rc;
}

static int image_inspect(const struct cli_globals *g, int argc, char **argv)
{
	int rc;
	int i = parse(argc, argv, inspect_usage, "+h", help_only, NULL, NULL, &rc);
	if (i < 0)
		return rc;
	if (i == argc)
		return usage_error(inspect_usage, "%s", "inspect needs at least one IMAGE");
	struct img_store *s;
	if (open_store(g, &s))
		return 1;
	json_object *all = json_object_new_array();
	rc = 0;
	for (; i < argc; i++) {
		vt_err err = { 0 };
		json_object *one;
		if (img_inspect_json(s, argv[i], &one, &err) < 0)
			rc = fail("image inspect", &err);
		else
			json_object_array_add(all, one);
	}
	img_store_close(s);
	puts(json_object_to_json_string_ext(all, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
							 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(all);
	return rc;
}

static const char *str_of(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static long long parse_time(const char *t)
{
	struct tm tm = { 0 };
	return t && strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) ? (long long)timegm(&tm) : 0;
}

static void history_rows(json_object *info, bool no_trunc)
{
	json_object *history, *layers = NULL, *rootfs;
	if (!json_object_object_get_ex(info, "History", &history))
		return;
	if (json_object_object_get_ex(info, "RootFS", &rootfs))
		json_object_object_get_ex(rootfs, "Layers", &layers);
	size_t n = json_object_array_length(history);
	size_t layer = layers ? json_object_array_length(layers) : 0;
	printf("%-14s %-16s %-45s %-10s %s\n", "IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT");
	for (size_t k = n; k-- > 0;) {
		json_object *h = json_object_array_get_idx(history, k), *empty;
		bool is_empty = json_object_object_get_ex(h, "empty_layer", &empty) && json_object_get_boolean(empty);
		char age[48], id[80];
		human_age(parse_time(str_of(h, "created")), age, sizeof(age));
		snprintf(id, sizeof(id), "%.*s", no_trunc ? 64 : 12, k + 1 == n ? str_of(info, "Id") : "<missing>");
		const char *by = str_of(h, "created_by");
		printf("%-14s %-16s %-45.*s %-10s %s\n", id, age, no_trunc ? 4096 : 45, by,
		       is_empty || !layer ? "0 B" : "-", str_of(h, "comment"));
		if (!is_empty && layer)
			layer--;
	}
}

static int history_opt(int c, const char *arg, void *ctx)
{
	(void)arg;
	if (c != 'T')
		return -1;
	*(bool *)ctx = true;
	return 0;
}

static int image_history(const struct cli_globals *g, int argc, char **argv)
{
	static const struct option longopts[] = { { "help", no_argument, NULL, 'h' },
						   { "no-trunc", no_argument, NULL, 'T' },
						   { 0 } };
	bool no_trunc = false;
	int rc;
	int i = parse(argc, argv, history_usage, "+h", longopts, history_opt, &no_trunc, &rc);
	if (i < 0)
		return rc;
	if (argc - i != 1)
		return usage_error(history_usage, "%s", "history needs one IMAGE");
	struct img_store *s;
	if (open_store(g, &s))
		return 1;
	vt_err err = { 0 };
	json_object *info;
	rc = img_inspect_json(s, argv[i], &info, &err) < 0 ? fail("image history", &err) : 0;
	img_store_close(s);
	if (rc == 0) {
		history_rows(info, no_trunc);
		json_object_put(info);
	}
	return rc;
}

struct subcommand {
	const char *name;
	int (*run)(const struct cli_globals *g, int argc, char **argv);
};

static const struct subcommand subcommands[] = {
	{ "import", image_import }, { "ls", image_ls }, { "list", image_ls }, { "tag", image_tag },
	{ "load", image_load }, { "save", image_save }, { "rm", image_rm }, { "remove", image_rm },
	{ "history", image_history }, { "inspect", image_inspect },
};

int cmd_image(const struct cli_globals *g, int argc, char **argv)
{
	if (argc < 2)
		return usage_error(image_usage, "%s", "image needs a command");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(image_usage, stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].run(g, argc - 1, argv + 1);
	return usage_error(image_usage, "unknown command 'image %s'", argv[1]);
}
