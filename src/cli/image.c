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
	printf("%-40s %-12s %-14.*s %-16s %s\n", repo, tag, no_trunc ? 64 : 12, im->id + 7, age, size);
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

struct subcommand {
	const char *name;
	int (*run)(const struct cli_globals *g, int argc, char **argv);
};

static const struct subcommand subcommands[] = {
	{ "import", image_import }, { "ls", image_ls }, { "list", image_ls }, { "tag", image_tag },
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
