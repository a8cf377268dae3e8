/* The container commands: run, ps, logs, exec, stop, kill, start, rm, pause, unpause, inspect, diff, commit.
 * Parses argv into the container layer's options, calls it, prints. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "container/container.h"
#include "image/image.h"
#include "lib/util.h"
#include "runtime/rt.h"


/* The store root: --root, else $VIRTUS_ROOT, else the default. */
static const char *store_root(const struct cli_globals *g)
{
	return img_default_root(g->root);
}

static int fail(const char *cmd, const vt_err *err, int status)
{
	fprintf(stderr, "virtus %s: %s\n", cmd, err->msg);
	return status;
}

static int usage_error(const char *usage, const char *fmt, const char *arg)
{
	fprintf(stderr, "virtus: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s", usage);
	return EXIT_USAGE;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	}
	return false;
}

/* ---------------- run ---------------- */

static const char run_usage[] =
	"usage: virtus run [options] IMAGE [CMD [ARG...]]\n"
	"       virtus run [options] --rootfs DIR CMD [ARG...]\n"
	"\n"
	"Run a command in a new container.\n"
	"\n"
	"  -d, --detach            run in the background and print the container's id\n"
	"      --name NAME         name the container (default: a generated name)\n"
	"      --rm                remove the container when it exits\n"
	"  -i, --interactive       keep stdin open\n"
	"  -t, --tty               give the container a terminal\n"
	"  -e, --env KEY[=VALUE]   set an environment variable (KEY alone: this process's value)\n"
	"  -w, --workdir DIR       working directory in the container\n"
	"  -u, --user USER[:GROUP] run as this user (names from the image's /etc/passwd and /etc/group)\n"
	"  -v, --volume HOST:CTR[:ro]  bind-mount a host directory (created if missing)\n"
	"  -p, --publish [ADDR:]HOSTPORT:CTRPORT[/udp]  publish a container port on the host\n"
	"      --network MODE      bridge (default), slirp, none or host\n"
	"      --memory SIZE       memory limit (512M, 1G...)\n"
	"      --cpus N            CPU limit (0.5, 2...)\n"
	"      --pids-limit N      at most N processes\n"
	"      --entrypoint CMD    replace the image's entrypoint\n"
	"      --rootfs DIR        use DIR as the (read-only) root file system instead of an image\n"
	"      --isolation LEVEL   container (default: namespaces on the host's kernel) or vm (a microVM of its\n"
	"                          own, with its own kernel: the default guest's; needs /dev/kvm)\n"
	"  -h, --help              print this help\n";

enum { OPT_NAME = 256, OPT_RM, OPT_NETWORK, OPT_MEMORY, OPT_CPUS, OPT_PIDS, OPT_ROOTFS, OPT_ENTRYPOINT, OPT_ISOLATION };

struct run_args {
	struct ctr_run_opts o;
	const char *env[256], *ports[CNET_MAX_PORTS];
	struct ctr_volume volumes[64];
	char *volume_bufs[64];
	struct cnet_port port_specs[CNET_MAX_PORTS];
};

static void run_args_clear(struct run_args *a)
{
	for (size_t i = 0; i < a->o.n_volumes; i++)
		free(a->volume_bufs[i]);
}

static int run_option(struct run_args *a, int c, const char *arg, vt_err *err)
{
	struct ctr_run_opts *o = &a->o;
	uint64_t n;
	switch (c) {
	case 'd': o->detach = true; return 0;
	case 'i': o->interactive = true; return 0;
	case 't': o->tty = true; return 0;
	case 'w': o->workdir = arg; return 0;
	case 'u': o->user = arg; return 0;
	case OPT_NAME: o->name = arg; return 0;
	case OPT_RM: o->auto_remove = true; return 0;
	case OPT_ROOTFS: o->rootfs = arg; return 0;
	case OPT_ENTRYPOINT: o->entrypoint = arg; return 0;
	case OPT_ISOLATION:
		if (strcmp(arg, "vm") && strcmp(arg, "container"))
			return vt_fail(err, "--isolation '%s': expected container or vm", arg);
		o->vm = !strcmp(arg, "vm");
		return 0;
	case OPT_NETWORK: return cnet_parse_mode(arg, &o->net.mode, err);
	case OPT_MEMORY: return parse_size(arg, &o->memory, err) ? vt_err_prefix(err, "--memory") : 0;
	case OPT_CPUS: return ctr_parse_cpus(arg, &o->cpu_quota, err);
	case OPT_PIDS:
		if (parse_uint(arg, 1, INT32_MAX, &n))
			return vt_fail(err, "--pids-limit '%s': expected a positive number", arg);
		o->pids_limit = (int64_t)n;
		return 0;
	case 'e':
		if (o->n_env >= ARRAY_SIZE(a->env))
			return vt_fail(err, "too many -e options");
		a->env[o->n_env++] = arg;
		return 0;
	case 'v':
		if (o->n_volumes >= ARRAY_SIZE(a->volumes))
			return vt_fail(err, "too many -v options");
		o->n_volumes++;
		return ctr_parse_volume(arg, &a->volumes[o->n_volumes - 1], &a->volume_bufs[o->n_volumes - 1], err);
	case 'p':
		if (o->net.n_ports >= CNET_MAX_PORTS)
			return vt_fail(err, "too many -p options (at most %d)", CNET_MAX_PORTS);
		a->ports[o->net.n_ports] = arg;
		return cnet_parse_port(arg, &a->port_specs[o->net.n_ports++], err);
	}
	return vt_fail(err, "unknown option");
}

static int parse_run(int argc, char **argv, struct run_args *a, vt_err *err)
{
	static const struct option longs[] = {
		{ "detach", no_argument, NULL, 'd' }, { "interactive", no_argument, NULL, 'i' },
		{ "tty", no_argument, NULL, 't' }, { "env", required_argument, NULL, 'e' },
		{ "workdir", required_argument, NULL, 'w' }, { "user", required_argument, NULL, 'u' },
		{ "volume", required_argument, NULL, 'v' }, { "publish", required_argument, NULL, 'p' },
		{ "name", required_argument, NULL, OPT_NAME }, { "rm", no_argument, NULL, OPT_RM },
		{ "network", required_argument, NULL, OPT_NETWORK }, { "net", required_argument, NULL, OPT_NETWORK },
		{ "memory", required_argument, NULL, OPT_MEMORY }, { "cpus", required_argument, NULL, OPT_CPUS },
		{ "pids-limit", required_argument, NULL, OPT_PIDS }, { "rootfs", required_argument, NULL, OPT_ROOTFS },
		{ "entrypoint", required_argument, NULL, OPT_ENTRYPOINT },
		{ "isolation", required_argument, NULL, OPT_ISOLATION }, { 0 },
	};
	int c;
	a->o.net.mode = CNET_BRIDGE;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+dite:w:u:v:p:", longs, NULL)) != -1) {
		if (c == '?' || c == ':') {
			vt_fail(err, "unknown option or missing value: %s", argv[optind - 1]);
			return EXIT_USAGE;
		}
		if (run_option(a, c, optarg, err))
			return -1;
	}
	int first = optind;
	if (!a->o.rootfs) {
		if (first >= argc)
			return vt_fail(err, "an image is required");
		a->o.image = argv[first++];
	}
	a->o.cmd = (const char *const *)argv + first;
	a->o.n_cmd = (size_t)(argc - first);
	a->o.env = a->env;
	a->o.volumes = a->volumes;
	a->o.net.ports = a->port_specs;
	a->o.port_specs = a->ports;
	return 0;
}

static int cmd_run(const struct cli_globals *g, int argc, char **argv)
{
	struct run_args a = { 0 };
	vt_err err = { 0 };
	int bad = parse_run(argc, argv, &a, &err);
	if (bad) {
		run_args_clear(&a);
		if (bad == EXIT_USAGE)
			return usage_error(run_usage, "run: %s", err.msg);
		fprintf(stderr, "virtus run: %s\n", err.msg);
		return CTR_EXIT_ERROR;
	}
	char id[CTR_ID_LEN + 1];
	int status;
	int rc = ctr_run(store_root(g), &a.o, id, &status, &err);
	run_args_clear(&a);
	if (rc)
		return fail("run", &err, status);
	if (a.o.detach)
		printf("%s\n", id);
	return status;
}

/* ---------------- ps ---------------- */

static const char ps_usage[] =
	"usage: virtus ps [-a|--all] [-q|--quiet]\n"
	"\n"
	"List the running containers (-a: all of them; -q: only their ids).\n";

static double seconds_since(const char *rfc3339)
{
	struct tm tm = { 0 };
	if (!*rfc3339 || !strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm))
		return -1;
	return difftime(time(NULL), timegm(&tm));
}

static void human_duration(double s, char *out, size_t len)
{
	if (s < 1)
		snprintf(out, len, "Less than a second");
	else if (s < 60)
		snprintf(out, len, "%d second%s", (int)s, (int)s == 1 ? "" : "s");
	else if (s < 3600)
		snprintf(out, len, "%d minute%s", (int)(s / 60), (int)(s / 60) == 1 ? "" : "s");
	else if (s < 86400)
		snprintf(out, len, "%d hour%s", (int)(s / 3600), (int)(s / 3600) == 1 ? "" : "s");
	else
		snprintf(out, len, "%d day%s", (int)(s / 86400), (int)(s / 86400) == 1 ? "" : "s");
}

static void status_text(json_object *rec, char *out, size_t len)
{
	const char *st = ctr_status(rec);
	char d[64];
	if (!strcmp(st, "running") || !strcmp(st, "paused")) {
		human_duration(seconds_since(ctr_rec_str(rec, "StartedAt")), d, sizeof(d));
		snprintf(out, len, "Up %s%s", d, !strcmp(st, "paused") ? " (Paused)" : "");
	} else if (!strcmp(st, "exited")) {
		human_duration(seconds_since(ctr_rec_str(rec, "FinishedAt")), d, sizeof(d));
		snprintf(out, len, "Exited (%lld) %s ago", ctr_rec_int(rec, "ExitCode"), d);
	} else {
		snprintf(out, len, "Created");
	}
}

static void command_text(json_object *rec, char *out, size_t len)
{
	size_t n = 0;
	out[0] = 0;
	static const char *const parts[] = { "Entrypoint", "Cmd" };
	for (size_t p = 0; p < 2; p++) {
		json_object *a = json_object_object_get(rec, parts[p]);
		for (size_t i = 0; a && i < json_object_array_length(a) && n < len; i++)
			n += (size_t)snprintf(out + n, len - n, "%s%s", n ? " " : "",
					      json_object_get_string(json_object_array_get_idx(a, i)));
	}
	if (strlen(out) > 20)
		strcpy(out + 17, "...");
}

static void ports_text(json_object *rec, char *out, size_t len)
{
	json_object *a = json_object_object_get(rec, "Ports");
	size_t n = 0;
	out[0] = 0;
	for (size_t i = 0; a && i < json_object_array_length(a) && n < len; i++) {
		struct cnet_port p;
		vt_err ignored;
		if (!cnet_parse_port(json_object_get_string(json_object_array_get_idx(a, i)), &p, &ignored))
			n += (size_t)snprintf(out + n, len - n, "%s%s:%u->%u/%s", n ? ", " : "",
					      p.host_addr[0] ? p.host_addr : "0.0.0.0", p.host_port, p.ctr_port,
					      p.udp ? "udp" : "tcp");
	}
}

static void print_ps_line(json_object *rec, const char *id)
{
	char cmd[64], status[96], ports[256], created[64];
	command_text(rec, cmd, sizeof(cmd));
	status_text(rec, status, sizeof(status));
	ports_text(rec, ports, sizeof(ports));
	human_duration(seconds_since(ctr_rec_str(rec, "Created")), created, sizeof(created));
	const char *image = ctr_rec_str(rec, "ImageName"), *isolation = ctr_rec_str(rec, "Isolation");
	printf("%-12.12s  %-24s  %-20s  %-18s  %-28s  %-20s  %-9s  %s\n", id, *image ? image : ctr_rec_str(rec, "Rootfs"),
	       cmd, strcat(created, " ago"), status, ports, *isolation ? isolation : "container", ctr_rec_str(rec, "Name"));
}

static int cmd_ps(const struct cli_globals *g, int argc, char **argv)
{
	static const struct option longs[] = { { "all", no_argument, NULL, 'a' }, { "quiet", no_argument, NULL, 'q' },
					       { 0 } };
	bool all = false, quiet = false;
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "aq", longs, NULL)) != -1) {
		if (c == 'a')
			all = true;
		else if (c == 'q')
			quiet = true;
		else
			return usage_error(ps_usage, "ps: unknown option %s", argv[optind - 1]);
	}
	if (optind < argc)
		return usage_error(ps_usage, "ps: unexpected argument '%s'", argv[optind]);
	struct ctr_store s;
	vt_err err = { 0 };
	char **ids;
	if (ctr_store_init(&s, store_root(g), &err) || ctr_list(&s, &ids, &err))
		return fail("ps", &err, CTR_EXIT_ERROR);
	if (!quiet)
		printf("%-12s  %-24s  %-20s  %-18s  %-28s  %-20s  %-9s  %s\n", "CONTAINER ID", "IMAGE", "COMMAND",
		       "CREATED", "STATUS", "PORTS", "ISOLATION", "NAMES");
	for (size_t i = 0; ids[i]; i++) {
		json_object *rec;
		if (ctr_record_load(&s, ids[i], &rec, NULL))
			continue;
		const char *st = ctr_status(rec);
		if (all || !strcmp(st, "running") || !strcmp(st, "paused")) {
			if (quiet)
				printf("%.12s\n", ids[i]);
			else
				print_ps_line(rec, ids[i]);
		}
		json_object_put(rec);
	}
	ctr_strv_free(ids);
	ctr_store_clear(&s);
	return 0;
}

/* ---------------- logs ---------------- */

static const char logs_usage[] =
	"usage: virtus logs [-f|--follow] CONTAINER\n"
	"\n"
	"Print what a detached container wrote (-f: go on until it exits).\n";

static int copy_out(int fd)
{
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write_all(1, buf, (size_t)n))
			return -1;
	return 0;
}

static int cmd_logs(const struct cli_globals *g, int argc, char **argv)
{
	static const struct option longs[] = { { "follow", no_argument, NULL, 'f' }, { 0 } };
	bool follow = false;
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "f", longs, NULL)) != -1) {
		if (c != 'f')
			return usage_error(logs_usage, "logs: unknown option %s", argv[optind - 1]);
		follow = true;
	}
	if (optind != argc - 1)
		return usage_error(logs_usage, "logs: give one container%s", "");
	vt_err err = { 0 };
	cleanup_free char *path = NULL;
	json_object *rec;
	if (ctr_log_path(store_root(g), argv[optind], &path, &rec, &err))
		return fail("logs", &err, CTR_EXIT_ERROR);
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;
	if (fd >= 0) {
		rc = copy_out(fd);
		/* The monitor is the last writer: once it is gone, what is in the file is all there is. */
		while (!rc && follow && ctr_monitor_alive(rec)) {
			poll(NULL, 0, 100);
			rc = copy_out(fd);
		}
		if (!rc)
			rc = copy_out(fd);
	}
	json_object_put(rec);
	return rc ? CTR_EXIT_ERROR : 0;
}

/* ---------------- exec ---------------- */

static const char exec_usage[] =
	"usage: virtus exec [options] CONTAINER CMD [ARG...]\n"
	"\n"
	"Run a command in a running container; exits with its status.\n"
	"\n"
	"  -i, --interactive       keep stdin open\n"
	"  -t, --tty               give the command a terminal\n"
	"  -e, --env KEY=VALUE     set an environment variable\n"
	"  -w, --workdir DIR       working directory\n"
	"  -u, --user USER[:GROUP] run as this user\n"
	"  -h, --help              print this help\n";

static int cmd_exec(const struct cli_globals *g, int argc, char **argv)
{
	static const struct option longs[] = {
		{ "interactive", no_argument, NULL, 'i' }, { "tty", no_argument, NULL, 't' },
		{ "env", required_argument, NULL, 'e' }, { "workdir", required_argument, NULL, 'w' },
		{ "user", required_argument, NULL, 'u' }, { 0 },
	};
	const char *env[256];
	struct ctr_exec_opts o = { .env = env };
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+ite:w:u:", longs, NULL)) != -1) {
		switch (c) {
		case 'i': o.interactive = true; break;
		case 't': o.tty = true; break;
		case 'w': o.workdir = optarg; break;
		case 'u': o.user = optarg; break;
		case 'e':
			if (o.n_env >= ARRAY_SIZE(env) || !strchr(optarg, '='))
				return usage_error(exec_usage, "exec: -e '%s': expected KEY=VALUE", optarg);
			env[o.n_env++] = optarg;
			break;
		default:
			return usage_error(exec_usage, "exec: unknown option or missing value: %s", argv[optind - 1]);
		}
	}
	if (argc - optind < 2)
		return usage_error(exec_usage, "exec: give a container and a command%s", "");
	o.args = (const char *const *)argv + optind + 1;
	o.n_args = (size_t)(argc - optind - 1);
	vt_err err = { 0 };
	int status;
	if (ctr_exec(store_root(g), argv[optind], &o, &status, &err))
		return fail("exec", &err, status);
	return status;
}

/* ---------------- stop, kill, start, rm, pause, unpause ---------------- */

static const char stop_usage[] =
	"usage: virtus stop [-t|--time SECS] CONTAINER...\n"
	"\n"
	"Stop containers: SIGTERM, then SIGKILL when SECS (default 10) have passed.\n";
static const char kill_usage[] =
	"usage: virtus kill [-s|--signal SIG] CONTAINER...\n"
	"\n"
	"Send a signal (default KILL) to containers' main process.\n";
static const char start_usage[] =
	"usage: virtus start CONTAINER...\n"
	"\n"
	"Run created or exited containers again, detached (with the same file system changes).\n";
static const char rm_usage[] =
	"usage: virtus rm [-f|--force] CONTAINER...\n"
	"\n"
	"Remove containers (-f: kill a running one first).\n";
static const char pause_usage[] =
	"usage: virtus pause CONTAINER...\n"
	"\n"
	"Freeze every process of running containers.\n";
static const char unpause_usage[] =
	"usage: virtus unpause CONTAINER...\n"
	"\n"
	"Thaw paused containers.\n";

struct each_opts {
	unsigned timeout;
	int sig;
	bool force;
};

static int act(const char *cmd, const char *root, const char *ref, const struct each_opts *e, vt_err *err)
{
	if (!strcmp(cmd, "stop"))
		return ctr_stop(root, ref, e->timeout, err);
	if (!strcmp(cmd, "kill"))
		return ctr_kill(root, ref, e->sig, err);
	if (!strcmp(cmd, "start"))
		return ctr_start(root, ref, err);
	if (!strcmp(cmd, "rm"))
		return ctr_remove(root, ref, e->force, err);
	return ctr_pause(root, ref, !strcmp(cmd, "pause"), err);
}

static const char *usage_of(const char *cmd)
{
	return !strcmp(cmd, "stop") ? stop_usage : !strcmp(cmd, "kill") ? kill_usage : !strcmp(cmd, "start") ? start_usage
	       : !strcmp(cmd, "rm") ? rm_usage : !strcmp(cmd, "pause") ? pause_usage : unpause_usage;
}

static int cmd_each(const struct cli_globals *g, int argc, char **argv)
{
	static const struct option longs[] = { { "time", required_argument, NULL, 't' },
					       { "signal", required_argument, NULL, 's' },
					       { "force", no_argument, NULL, 'f' }, { 0 } };
	const char *cmd = argv[0], *usage = usage_of(cmd);
	const char *shorts = !strcmp(cmd, "stop") ? "t:" : !strcmp(cmd, "kill") ? "s:" : !strcmp(cmd, "rm") ? "f" : "";
	struct each_opts e = { .timeout = 10, .sig = SIGKILL };
	uint64_t n;
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		if (c == 't' && strchr(shorts, 't') && !parse_uint(optarg, 0, 3600 * 24, &n))
			e.timeout = (unsigned)n;
		else if (c == 's' && strchr(shorts, 's') && (e.sig = rt_signal_from_name(optarg)) > 0)
			;
		else if (c == 'f' && strchr(shorts, 'f'))
			e.force = true;
		else
			return usage_error(usage, "bad option or value: %s", argv[optind - 1]);
	}
	if (optind >= argc)
		return usage_error(usage, "%s: give at least one container", cmd);
	int status = 0;
	for (int i = optind; i < argc; i++) {
		vt_err err = { 0 };
		if (act(cmd, store_root(g), argv[i], &e, &err))
			status = fail(cmd, &err, CTR_EXIT_ERROR);
		else
			printf("%s\n", argv[i]);
	}
	return status;
}

/* ---------------- inspect, diff, commit ---------------- */

static const char inspect_usage[] =
	"usage: virtus inspect CONTAINER|IMAGE...\n"
	"\n"
	"Describe containers (or images) as JSON.\n";
static const char diff_usage[] =
	"usage: virtus diff CONTAINER\n"
	"\n"
	"List the files a container added (A), changed (C) or deleted (D).\n";
static const char commit_usage[] =
	"usage: virtus commit CONTAINER NAME[:TAG]\n"
	"\n"
	"Make a new image of the container's image plus its changes (a running container is paused meanwhile).\n";

static int only_positionals(int argc, char **argv, const char *usage)
{
	if (argc > 1 && argv[1][0] == '-' && strcmp(argv[1], "--"))
		return usage_error(usage, "unknown option %s", argv[1]);
	return 0;
}

static int cmd_inspect(const struct cli_globals *g, int argc, char **argv)
{
	if (only_positionals(argc, argv, inspect_usage))
		return EXIT_USAGE;
	if (argc < 2)
		return usage_error(inspect_usage, "inspect: give a container or an image%s", "");
	json_object *all = json_object_new_array();
	int status = 0;
	for (int i = 1; i < argc; i++) {
		json_object *o;
		vt_err err = { 0 };
		if (ctr_inspect_json(store_root(g), argv[i], &o, &err))
			status = fail("inspect", &err, CTR_EXIT_ERROR);
		else
			json_object_array_add(all, o);
	}
	if (json_object_array_length(all))
		printf("%s\n", json_object_to_json_string_ext(all, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(all);
	return status;
}

static void print_change(char kind, const char *path, void *arg)
{
	(void)arg;
	printf("%c %s\n", kind, path);
}

static int cmd_diff(const struct cli_globals *g, int argc, char **argv)
{
	if (only_positionals(argc, argv, diff_usage))
		return EXIT_USAGE;
	if (argc != 2)
		return usage_error(diff_usage, "diff: give one container%s", "");
	vt_err err = { 0 };
	if (ctr_diff(store_root(g), argv[1], print_change, NULL, &err))
		return fail("diff", &err, CTR_EXIT_ERROR);
	return 0;
}

static int cmd_commit(const struct cli_globals *g, int argc, char **argv)
{
	if (only_positionals(argc, argv, commit_usage))
		return EXIT_USAGE;
	if (argc != 3)
		return usage_error(commit_usage, "commit: give a container and a name%s", "");
	vt_err err = { 0 };
	char id[128];
	if (ctr_commit(store_root(g), argv[1], argv[2], id, sizeof(id), &err))
		return fail("commit", &err, CTR_EXIT_ERROR);
	printf("%s\n", id);
	return 0;
}

/* ---------------- dispatch ---------------- */

struct command {
	const char *name;
	int (*fn)(const struct cli_globals *g, int argc, char **argv);
	const char *usage;
};

int cmd_container(const struct cli_globals *g, int argc, char **argv)
{
	static const struct command commands[] = {
		{ "run", cmd_run, run_usage },          { "ps", cmd_ps, ps_usage },
		{ "logs", cmd_logs, logs_usage },       { "exec", cmd_exec, exec_usage },
		{ "stop", cmd_each, stop_usage },       { "kill", cmd_each, kill_usage },
		{ "start", cmd_each, start_usage },     { "rm", cmd_each, rm_usage },
		{ "pause", cmd_each, pause_usage },     { "unpause", cmd_each, unpause_usage },
		{ "inspect", cmd_inspect, inspect_usage }, { "diff", cmd_diff, diff_usage },
		{ "commit", cmd_commit, commit_usage },
	};
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(argv[0], commands[i].name))
			continue;
		/* Help only before the command's own arguments: `run IMG sh -h` is the container's. */
		int upto = argc;
		if (!strcmp(argv[0], "run") || !strcmp(argv[0], "exec"))
			for (upto = 1; upto < argc && argv[upto][0] == '-'; upto++)
				;
		if (wants_help(upto, argv)) {
			fputs(commands[i].usage, stdout);
			return 0;
		}
		return commands[i].fn(g, argc, argv);
	}
	fprintf(stderr, "virtus: unknown command '%s'\n", argv[0]);
	return EXIT_USAGE;
}
