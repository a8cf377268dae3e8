/* `virtus build`: parse the command line, then image/build.c does the work. The steps' progress goes to
 * stdout; SIGINT, SIGTERM and SIGHUP stop the build cleanly (they are blocked and read from a signalfd). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "image/build.h"
#include "image/image.h"

static const char build_usage[] =
	"usage: virtus build [-t NAME[:TAG]] [-f FILE] [--build-arg NAME[=VALUE]]... [--no-cache] DIR\n"
	"\n"
	"Build an image from a Containerfile (or Dockerfile) with DIR as the build context.\n"
	"\n"
	"  -t, --tag NAME[:TAG]      name the image (default tag: latest)\n"
	"  -f, --file FILE           the recipe (default: DIR/Containerfile, else DIR/Dockerfile)\n"
	"      --build-arg NAME=VALUE  a value for an ARG of the recipe (NAME alone: from the environment)\n"
	"      --no-cache            run every step, even those the cache has\n"
	"  -h, --help                this text\n"
	"\n"
	"The recipe's COPY and ADD take --chown=USER[:GROUP] and --chmod=MODE; COPY --from=STAGE takes\n"
	"files from an earlier stage (FROM IMAGE AS STAGE; or its number) or an image. RUN steps use the\n"
	"host's network. Images of steps that succeeded stay in the store as cache.\n";

struct build_cli {
	struct build_opts o;
	const char **args;
	size_t n_args;
};

static int usage_error(const char *msg)
{
	if (msg)
		fprintf(stderr, "virtus build: %s\n", msg);
	fputs(build_usage, stderr);
	return EXIT_USAGE;
}

/* Returns 0, 1 after --help, or EXIT_USAGE. */
static int parse(int argc, char **argv, struct build_cli *c)
{
	enum { OPT_BUILD_ARG = 256, OPT_NO_CACHE };
	static const struct option longopts[] = {
		{ "tag", required_argument, NULL, 't' },       { "file", required_argument, NULL, 'f' },
		{ "build-arg", required_argument, NULL, OPT_BUILD_ARG }, { "no-cache", no_argument, NULL, OPT_NO_CACHE },
		{ "help", no_argument, NULL, 'h' },            { NULL, 0, NULL, 0 },
	};
	int opt;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+t:f:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			c->o.name = optarg;
			break;
		case 'f':
			c->o.recipe_path = optarg;
			break;
		case OPT_BUILD_ARG:
			c->args[c->n_args++] = optarg;
			break;
		case OPT_NO_CACHE:
			c->o.no_cache = true;
			break;
		case 'h':
			fputs(build_usage, stdout);
			return 1;
		default:
			return usage_error(NULL);
		}
	}
	if (optind != argc - 1)
		return usage_error(optind < argc ? "one build context directory, please" : "the build context DIR is missing");
	if (c->o.name && !*c->o.name)
		return usage_error("-t needs a name");
	c->o.context_dir = argv[optind];
	return 0;
}

/* SIGINT/SIGTERM/SIGHUP blocked and read from a signalfd: the build stops between (or inside) steps and
 * still cleans up. */
static int stop_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int cmd_build(const struct cli_globals *g, int argc, char **argv)
{
	struct build_cli c = { .o = { .out = stdout, .stop_fd = -1 } };
	c.args = calloc((size_t)argc + 1, sizeof(char *));
	if (!c.args) {
		fprintf(stderr, "virtus build: out of memory\n");
		return 1;
	}
	int rc = parse(argc, argv, &c);
	if (rc) {
		free(c.args);
		return rc == 1 ? 0 : rc;
	}
	c.o.build_args = c.args;
	c.o.n_build_args = c.n_args;
	/* RUN steps read nothing: docker gives them no input either. */
	int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd >= 0) {
		dup2(null_fd, 0);
		close(null_fd);
	}
	c.o.stop_fd = stop_signals();
	vt_err err = { 0 };
	struct img_store *s = NULL;
	char id[IMG_ID_LEN + 1];
	rc = img_store_open(img_default_root(g->root), &s, &err) ?: build_image(s, &c.o, id, &err);
	if (rc)
		fprintf(stderr, "virtus build: %s\n", err.msg);
	else
		printf("%s\n", strncmp(id, "sha256:", 7) ? id : id + 7);
	if (s)
		img_store_close(s);
	if (c.o.stop_fd >= 0)
		close(c.o.stop_fd);
	free(c.args);
	return rc ? 1 : 0;
}
