/* virtus-runtime: an OCI runtime with runc's command line. This file only parses arguments, prints
 * results and reports errors (to stderr and to --log, as text or JSON lines); the work is in the library. */
#include "runtime/rt.h"

#include "lib/store_so.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct cli {
	struct rt_globals g;
	const char *log_path;
	bool log_json;
	int log_fd;
};

static void log_line(const struct cli *c, const char *level, const char *msg)
{
	if (c->log_fd < 0)
		return;
	cleanup_free char *now = rt_now_rfc3339();
	cleanup_free char *line = NULL;
	int n;
	if (c->log_json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "level", json_object_new_string(level));
		json_object_object_add(o, "msg", json_object_new_string(msg));
		json_object_object_add(o, "time", json_object_new_string(now ? now : ""));
		n = asprintf(&line, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else {
		n = asprintf(&line, "time=\"%s\" level=%s msg=\"%s\"\n", now ? now : "", level, msg);
	}
	if (n > 0)
		write_all(c->log_fd, line, (size_t)n);
}

static int fail(const struct cli *c, const char *msg)
{
	fprintf(stderr, "virtus-runtime: %s\n", msg);
	log_line(c, "error", msg);
	return 1;
}

static void debug(const struct cli *c, const char *msg)
{
	if (c->g.debug)
		log_line(c, "debug", msg);
}

static int print_json(json_object *o, bool pretty)
{
	printf("%s\n", json_object_to_json_string_ext(o, pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE
								 : JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return fflush(stdout) ? 1 : 0;
}

/* VM isolation lives in libvirtus-store.so (with the agent's client and the VM's start-up): loaded only for a
 * VM-isolated container, so no other command maps it or its libraries. */
static const struct rt_vm_ops *load_vm_ops(vt_err *err)
{
	static const struct rt_vm_ops *ops;
	char why[PATH_MAX * 2 + 128];
	if (ops)
		return ops;
	void *h = store_so_open(why, sizeof(why));
	if (!h)
		return vt_fail(err, "it needs %s (%s)", STORE_SO, why), NULL;
	const struct rt_vm_ops *(*get)(void);
	*(void **)&get = dlsym(h, "oci_vm_ops");
	if (!get)
		return vt_fail(err, "%s lacks oci_vm_ops: it does not match this virtus-runtime", STORE_SO), NULL;
	return ops = get();
}

/* ---- per-command option parsing ---- */

enum {
	OPT_BUNDLE = 256, OPT_PID_FILE, OPT_CONSOLE_SOCKET, OPT_NO_PIVOT, OPT_NO_NEW_KEYRING, OPT_PRESERVE_FDS,
	OPT_PROCESS, OPT_CWD, OPT_ENV, OPT_USER, OPT_TTY, OPT_DETACH, OPT_FORMAT, OPT_FORCE, OPT_ALL, OPT_NNP,
	OPT_QUIET, OPT_ROOTLESS, OPT_KEEP, OPT_NO_SUBREAPER, OPT_CAP, OPT_APPARMOR, OPT_PROC_LABEL, OPT_HELP,
};

static const struct option cmd_options[] = {
	{ "bundle", required_argument, NULL, OPT_BUNDLE },
	{ "pid-file", required_argument, NULL, OPT_PID_FILE },
	{ "console-socket", required_argument, NULL, OPT_CONSOLE_SOCKET },
	{ "no-pivot", no_argument, NULL, OPT_NO_PIVOT },
	{ "no-new-keyring", no_argument, NULL, OPT_NO_NEW_KEYRING },
	{ "preserve-fds", required_argument, NULL, OPT_PRESERVE_FDS },
	{ "process", required_argument, NULL, OPT_PROCESS },
	{ "cwd", required_argument, NULL, OPT_CWD },
	{ "env", required_argument, NULL, OPT_ENV },
	{ "user", required_argument, NULL, OPT_USER },
	{ "tty", no_argument, NULL, OPT_TTY },
	{ "detach", no_argument, NULL, OPT_DETACH },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "no-new-privs", no_argument, NULL, OPT_NNP },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "rootless", no_argument, NULL, OPT_ROOTLESS },
	{ "keep", no_argument, NULL, OPT_KEEP },
	{ "no-subreaper", no_argument, NULL, OPT_NO_SUBREAPER },
	{ "cap", required_argument, NULL, OPT_CAP },
	{ "apparmor", required_argument, NULL, OPT_APPARMOR },
	{ "process-label", required_argument, NULL, OPT_PROC_LABEL },
	{ "help", no_argument, NULL, OPT_HELP },
	{ 0 },
};

struct cmd_args {
	struct rt_create_opts create;
	struct rt_exec_opts exec;
	const char *format;
	bool force, all, quiet, help, rootless;
	const char *env[64];
	const char *positional[64];
	size_t n_positional;
};

static int parse_preserve(const char *s, int *out)
{
	uint64_t n;
	if (parse_uint(s, 0, 1000, &n))
		return -1;
	*out = (int)n;
	return 0;
}

/* Parse the options of any command (they share one table, runc-style), collecting positionals. Options may
 * follow the positionals (`kill ID KILL --all`, `delete ID --force`), as runc's command line allows; exec
 * stops at its first positional, since the command to run follows with options of its own. */
static int parse_cmd(int argc, char **argv, struct cmd_args *a, char *bad, size_t bad_size)
{
	int opt;
	optind = 0; /* 0, not 1: GNU getopt then forgets the "+" (stop at the first positional) of the globals */
	opterr = 0;
	a->create.bundle = ".";
	const char *opts = !strcmp(argv[0], "exec") ? "+:b:dtfaqu:e:p:h" : ":b:dtfaqu:e:p:h";
	while ((opt = getopt_long_only(argc, argv, opts, cmd_options, NULL)) != -1) {
		switch (opt) {
		case 'b': case OPT_BUNDLE: a->create.bundle = optarg; break;
		case OPT_PID_FILE: a->create.pid_file = a->exec.pid_file = optarg; break;
		case OPT_CONSOLE_SOCKET: a->create.console_socket = a->exec.console_socket = optarg; break;
		case OPT_NO_PIVOT: a->create.no_pivot = true; break;
		case OPT_PRESERVE_FDS:
			if (parse_preserve(optarg, &a->create.preserve_fds))
				return snprintf(bad, bad_size, "--preserve-fds '%s' is not a number", optarg), -1;
			a->exec.preserve_fds = a->create.preserve_fds;
			break;
		case 'p': case OPT_PROCESS: a->exec.process_file = optarg; break;
		case OPT_CWD: a->exec.cwd = optarg; break;
		case 'e': case OPT_ENV:
			if (a->exec.n_env >= ARRAY_SIZE(a->env))
				return snprintf(bad, bad_size, "too many --env options"), -1;
			a->env[a->exec.n_env++] = optarg;
			break;
		case 'u': case OPT_USER: a->exec.user = optarg; break;
		case 't': case OPT_TTY: a->exec.tty = true; break;
		case 'd': case OPT_DETACH: a->exec.detach = a->create.detach = true; break;
		case OPT_FORMAT: a->format = optarg; break;
		case 'f': case OPT_FORCE: a->force = true; break;
		case 'a': case OPT_ALL: a->all = true; break;
		case 'q': case OPT_QUIET: a->quiet = true; break;
		case OPT_NNP: a->exec.no_new_privs = true; break;
		case 'h': case OPT_HELP: a->help = true; break;
		case OPT_APPARMOR: a->exec.apparmor = optarg; break;
		case OPT_PROC_LABEL: a->exec.process_label = optarg; break;
		case OPT_KEEP: a->create.keep = true; break;
		case OPT_ROOTLESS: a->rootless = true; break;
		/* Nothing to do: this runtime never makes a session keyring, and `run` always reaps as a subreaper. */
		case OPT_NO_NEW_KEYRING: case OPT_NO_SUBREAPER:
			break;
		case OPT_CAP:
			return snprintf(bad, bad_size, "exec --cap is not supported: use --process"), -1;
		case ':':
			return snprintf(bad, bad_size, "option '%s' needs a value", argv[optind - 1]), -1;
		default:
			return snprintf(bad, bad_size, "unknown option '%s'", argv[optind - 1]), -1;
		}
	}
	a->exec.env = a->env;
	for (int i = optind; i < argc && a->n_positional < ARRAY_SIZE(a->positional); i++)
		a->positional[a->n_positional++] = argv[i];
	return 0;
}

/* ---- commands ---- */

static const char *need_id(const struct cmd_args *a)
{
	return a->n_positional ? a->positional[0] : NULL;
}

static int cmd_state(struct cli *c, struct cmd_args *a, vt_err *err)
{
	json_object *o;
	if (rt_cmd_state(&c->g, need_id(a), &o, err))
		return -1;
	return print_json(o, true);
}

static int cmd_kill(struct cli *c, struct cmd_args *a, vt_err *err)
{
	const char *name = a->n_positional > 1 ? a->positional[1] : "SIGTERM";
	int sig = rt_signal_from_name(name);
	if (sig < 0)
		return vt_fail(err, "kill: unknown signal '%s'", name);
	if (!need_id(a))
		return vt_fail(err, "kill: a container ID is required");
	return rt_cmd_kill(&c->g, need_id(a), sig, a->all, err);
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static int cmd_list(struct cli *c, struct cmd_args *a, vt_err *err)
{
	json_object *list;
	if (rt_cmd_list(&c->g, &list, err))
		return -1;
	if (a->format && !strcmp(a->format, "json"))
		return print_json(list, false);
	if (a->format && strcmp(a->format, "table"))
		return json_object_put(list), vt_fail(err, "list: unknown --format '%s' (table or json)", a->format);
	if (!a->quiet)
		printf("%-20s %-8s %-10s %-40s %-32s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i);
		if (a->quiet)
			printf("%s\n", str_field(e, "id"));
		else
			printf("%-20s %-8s %-10s %-40s %-32s %s\n", str_field(e, "id"), str_field(e, "pid"),
			       str_field(e, "status"), str_field(e, "bundle"), str_field(e, "created"),
			       str_field(e, "owner"));
	}
	json_object_put(list);
	return 0;
}

static int cmd_ps(struct cli *c, struct cmd_args *a, vt_err *err)
{
	cleanup_free pid_t *pids = NULL;
	size_t n;
	if (rt_cmd_ps(&c->g, need_id(a), &pids, &n, err))
		return -1;
	if (a->format && !strcmp(a->format, "json")) {
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, json_object_new_int(pids[i]));
		return print_json(arr, false);
	}
	printf("PID\tCMD\n");
	for (size_t i = 0; i < n; i++) {
		char path[64], cmd[256] = "";
		snprintf(path, sizeof(path), "/proc/%d/comm", pids[i]);
		FILE *f = fopen(path, "re");
		if (f) {
			if (fgets(cmd, sizeof(cmd), f))
				cmd[strcspn(cmd, "\n")] = 0;
			fclose(f);
		}
		printf("%d\t%s\n", pids[i], cmd);
	}
	return 0;
}

static int cmd_spec(struct cmd_args *a, vt_err *err)
{
	const char *dir = a->create.bundle;
	if (a->rootless)
		return vt_fail(err, "spec --rootless is not supported: virtus-runtime runs containers as root; write "
			       "the user namespace and its mappings into config.json yourself");
	cleanup_free char *path = rt_path_join(dir, "config.json");
	if (!path)
		return vt_fail_errno(err, ENOMEM, "spec");
	if (!access(path, F_OK))
		return vt_fail(err, "spec: %s already exists; remove it first", path);
	json_object *s = rt_spec_default();
	int rc = rt_write_file_atomic(path, json_object_to_json_string_ext(s, JSON_C_TO_STRING_PRETTY |
								       JSON_C_TO_STRING_NOSLASHESCAPE),
				      true, err);
	json_object_put(s);
	return rc;
}

static int cmd_exec(struct cli *c, struct cmd_args *a, int *status, vt_err *err)
{
	if (!need_id(a))
		return vt_fail(err, "exec: a container ID is required");
	a->exec.args = a->positional + 1;
	a->exec.n_args = a->n_positional - 1;
	return rt_cmd_exec(&c->g, need_id(a), &a->exec, status, err);
}

static int check_id_count(const char *cmd, const struct cmd_args *a, size_t want, vt_err *err)
{
	if (a->n_positional < 1)
		return vt_fail(err, "%s: a container ID is required", cmd);
	if (a->n_positional > want)
		return vt_fail(err, "%s: unexpected argument '%s'", cmd, a->positional[want]);
	return 0;
}

/* Run one command; *exit_code is what the process should exit with on success. */
static int dispatch(struct cli *c, const char *cmd, struct cmd_args *a, int *exit_code, vt_err *err)
{
	*exit_code = 0;
	if (!strcmp(cmd, "create"))
		return check_id_count(cmd, a, 1, err) ?: rt_cmd_create(&c->g, need_id(a), &a->create, err);
	if (!strcmp(cmd, "run"))
		return check_id_count(cmd, a, 1, err) ?: rt_cmd_run(&c->g, need_id(a), &a->create, exit_code, err);
	if (!strcmp(cmd, "start"))
		return check_id_count(cmd, a, 1, err) ?: rt_cmd_start(&c->g, need_id(a), err);
	if (!strcmp(cmd, "state"))
		return check_id_count(cmd, a, 1, err) ?: cmd_state(c, a, err);
	if (!strcmp(cmd, "kill"))
		return check_id_count(cmd, a, 2, err) ?: cmd_kill(c, a, err);
	if (!strcmp(cmd, "delete"))
		return check_id_count(cmd, a, 1, err) ?: rt_cmd_delete(&c->g, need_id(a), a->force, err);
	if (!strcmp(cmd, "pause") || !strcmp(cmd, "resume"))
		return check_id_count(cmd, a, 1, err) ?: rt_cmd_pause(&c->g, need_id(a), cmd[0] == 'p', err);
	if (!strcmp(cmd, "ps"))
		return check_id_count(cmd, a, 1, err) ?: cmd_ps(c, a, err);
	if (!strcmp(cmd, "list"))
		return cmd_list(c, a, err);
	if (!strcmp(cmd, "exec"))
		return cmd_exec(c, a, exit_code, err);
	if (!strcmp(cmd, "spec"))
		return cmd_spec(a, err);
	if (!strcmp(cmd, "features"))
		return print_json(rt_features_json(), true);
	return vt_fail(err, "unknown command '%s' (see --help)", cmd);
}

/* ---- help ---- */

struct command_help {
	const char *name, *synopsis, *what;
};

static const struct command_help commands[] = {
	{ "create", "create [--bundle DIR] [--pid-file F] [--console-socket SOCK] [--no-pivot] [--preserve-fds N] ID",
	  "create the container; its process waits for `start`" },
	{ "start", "start ID", "run the program of a created container (returns once it has been exec'd)" },
	{ "run", "run [--bundle DIR] [--pid-file F] [--console-socket SOCK] [--detach] [--keep] [--no-pivot] ID",
	  "create, start and wait; exits with the container's status (--keep: leave it for `delete`)" },
	{ "state", "state ID", "print the OCI state of the container as JSON" },
	{ "kill", "kill [--all] ID [SIGNAL]", "send SIGNAL (name or number, default SIGTERM); --all: every process" },
	{ "delete", "delete [--force] ID", "remove a stopped container; --force kills a created, running or paused one" },
	{ "exec", "exec [--process F] [--tty] [--console-socket S] [--pid-file F] [--detach] [--cwd DIR] [--env K=V]\n"
		  "       [--user UID[:GID]] [--no-new-privs] [--apparmor PROFILE] [--process-label L] ID [CMD ARGS...]",
	  "run another process in a running container" },
	{ "ps", "ps [--format table|json] ID", "list the container's processes" },
	{ "list", "list [--format table|json] [--quiet]", "list the containers under --root" },
	{ "pause", "pause ID", "freeze every process of the container" },
	{ "resume", "resume ID", "thaw a paused container" },
	{ "spec", "spec [--bundle DIR]", "write a default config.json" },
	{ "features", "features", "print what this runtime supports (OCI features JSON)" },
	{ "version", "version", "print the runtime and spec versions" },
	{ "help", "help [COMMAND]", "this text, or one command's" },
};

/* runc commands this runtime does not implement: refused by name, not as unknown. */
static const char *const unsupported[] = { "update", "events", "checkpoint", "restore" };

static const struct command_help *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static bool is_unsupported(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++)
		if (!strcmp(unsupported[i], name))
			return true;
	return false;
}

static void usage(void)
{
	printf("usage: virtus-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND ...\n"
	       "commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		printf("  %-9s %s\n", commands[i].name, commands[i].what);
	printf("`virtus-runtime COMMAND --help` (or `help COMMAND`) shows a command's options.\n");
}

static void command_usage(const struct command_help *h)
{
	printf("usage: virtus-runtime %s\n%s\n", h->synopsis, h->what);
}

static void print_version(void)
{
	printf("virtus-runtime version %s\nspec: %s\n", RT_VERSION, RT_OCI_VERSION);
}

/* `help [COMMAND]`: 0, or 1 for a command that does not exist. */
static int cmd_help(const struct cmd_args *a)
{
	if (!a->n_positional) {
		usage();
		return 0;
	}
	const struct command_help *h = find_command(a->positional[0]);
	if (h) {
		command_usage(h);
		return 0;
	}
	fprintf(stderr, "virtus-runtime: help: %s command '%s'\n",
		is_unsupported(a->positional[0]) ? "unsupported" : "unknown", a->positional[0]);
	return 1;
}

/* Options that mean something to one command only are refused elsewhere rather than ignored. */
static int check_option_scope(const char *cmd, const struct cmd_args *a, vt_err *err)
{
	if ((a->exec.apparmor || a->exec.process_label) && strcmp(cmd, "exec"))
		return vt_fail(err, "%s: --apparmor and --process-label apply to exec only (for the container's process "
			       "use process.apparmorProfile / process.selinuxLabel in config.json)", cmd);
	if (a->create.keep && strcmp(cmd, "run"))
		return vt_fail(err, "%s: --keep applies to run only", cmd);
	if (a->rootless && strcmp(cmd, "spec"))
		return vt_fail(err, "%s: --rootless applies to spec only", cmd);
	return 0;
}

enum { G_ROOT = 300, G_LOG, G_LOG_FORMAT, G_DEBUG, G_SYSTEMD, G_VERSION, G_HELP, G_CRIU, G_ROOTLESS };

static const struct option global_options[] = {
	{ "root", required_argument, NULL, G_ROOT },       { "log", required_argument, NULL, G_LOG },
	{ "log-format", required_argument, NULL, G_LOG_FORMAT }, { "debug", no_argument, NULL, G_DEBUG },
	{ "systemd-cgroup", no_argument, NULL, G_SYSTEMD }, { "version", no_argument, NULL, G_VERSION },
	{ "help", no_argument, NULL, G_HELP },             { "criu", required_argument, NULL, G_CRIU },
	{ "rootless", required_argument, NULL, G_ROOTLESS }, { 0 },
};

/* Returns -1 to continue with a command, or an exit code. */
static int parse_globals(int argc, char **argv, struct cli *c, const char **log_format)
{
	int opt;
	opterr = 0;
	while ((opt = getopt_long_only(argc, argv, "+hv", global_options, NULL)) != -1) {
		switch (opt) {
		case G_ROOT: c->g.root = optarg; break;
		case G_LOG: c->log_path = optarg; break;
		case G_LOG_FORMAT: *log_format = optarg; break;
		case G_DEBUG: c->g.debug = true; break;
		case G_SYSTEMD: c->g.systemd_cgroup = true; break;
		case G_CRIU: case G_ROOTLESS: break;
		case 'v': case G_VERSION:
			print_version();
			return 0;
		case 'h': case G_HELP: usage(); return 0;
		default:
			fprintf(stderr, "virtus-runtime: unknown global option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	return -1;
}

static int open_log(struct cli *c, const char *format)
{
	if (strcmp(format, "text") && strcmp(format, "json")) {
		fprintf(stderr, "virtus-runtime: --log-format '%s': use text or json\n", format);
		return -1;
	}
	c->log_json = !strcmp(format, "json");
	if (!c->log_path)
		return 0;
	c->log_fd = open(c->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (c->log_fd < 0) {
		fprintf(stderr, "virtus-runtime: --log %s: %s\n", c->log_path, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct cli c = { .g = { .root = RT_DEFAULT_ROOT, .vm_ops = load_vm_ops }, .log_fd = -1 };
	const char *log_format = "text";
	int rc = parse_globals(argc, argv, &c, &log_format);
	if (rc >= 0)
		return rc;
	if (open_log(&c, log_format))
		return 2;
	if (optind >= argc) {
		usage();
		return 2;
	}
	const char *cmd = argv[optind];
	if (is_unsupported(cmd)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "'%s' is not supported by virtus-runtime (%s)", cmd,
			 cmd[0] == 'u' ? "resources are fixed at create" : "no checkpoint/restore, no events stream");
		return fail(&c, msg);
	}
	if (c.g.systemd_cgroup && (!strcmp(cmd, "create") || !strcmp(cmd, "run")))
		return fail(&c, "--systemd-cgroup is not supported: this runtime drives cgroupfs directly (no systemd)");
	int cargc = argc - optind;
	char **cargv = argv + optind;
	struct cmd_args a = { 0 };
	char bad[256];
	vt_err err = { 0 };
	const struct command_help *help = find_command(cmd);
	if (parse_cmd(cargc, cargv, &a, bad, sizeof(bad)))
		return fail(&c, bad), 2;
	if (help && a.help) {
		command_usage(help);
		return 0;
	}
	if (!strcmp(cmd, "help"))
		return cmd_help(&a);
	if (!strcmp(cmd, "version")) {
		print_version();
		return 0;
	}
	if (check_option_scope(cmd, &a, &err))
		return fail(&c, err.msg), 2;
	char dbg[512];
	snprintf(dbg, sizeof(dbg), "command %s (root %s)", cmd, c.g.root);
	debug(&c, dbg);
	int exit_code;
	vt_err warning = { 0 };
	c.g.warning = &warning;
	int rc_cmd = dispatch(&c, cmd, &a, &exit_code, &err);
	for (char *save = NULL, *line = strtok_r(warning.msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		fprintf(stderr, "virtus-runtime: warning: %s\n", line);
		log_line(&c, "warning", line);
	}
	if (rc_cmd)
		return fail(&c, err.msg[0] ? err.msg : "failed");
	return exit_code;
}
