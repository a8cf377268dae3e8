/* virtus: git-style dispatch to the commands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"


static const char usage[] =
	"usage: virtus [-h|--help] [--version] [--root DIR] <command> [options]\n"
	"\n"
	"  vm run     boot a Linux kernel (or the default guest) in a KVM microVM\n"
	"  vm probe   say whether this host's KVM can run guest kernels natively\n"
	"  image      images: import, load, save, ls, tag, rm, history, inspect ('virtus image --help')\n"
	"  build      build an image from a Containerfile ('virtus build --help')\n"
	"  run        run a command in a new container ('virtus run --help')\n"
	"  ps         list containers\n"
	"  logs       print what a detached container wrote\n"
	"  exec       run a command in a running container\n"
	"  stop       stop containers (SIGTERM, then SIGKILL)\n"
	"  kill       send a signal to containers\n"
	"  start      run exited containers again\n"
	"  rm         remove containers\n"
	"  pause      freeze containers\n"
	"  unpause    thaw paused containers\n"
	"  inspect    describe containers or images as JSON\n"
	"  diff       list a container's file changes\n"
	"  commit     make an image of a container's changes\n"
	"  serve      the browser console: VMs, containers and images in a web page ('virtus serve --help')\n"
	"  help [vm [run|probe|ls]]  print the usage of a command\n"
	"  version    print the version\n"
	"\n"
	"'virtus vm run --help' describes the options.\n";

static const char vm_usage[] =
	"usage: virtus vm <command> [options]\n"
	"\n"
	"  run      boot a Linux kernel (or the default guest) in a KVM microVM ('virtus vm run --help')\n"
	"  probe    say whether this host's KVM can run guest kernels natively\n"
	"  ls       the VMs of this host\n"
	"  info     a VM's state and configuration\n"
	"  metrics  a VM's counters (vCPU exits, each device's requests, bytes, kicks, interrupts)\n"
	"  pause, resume, kill   a VM's vCPUs stopped where they are, going on again; the VM ended\n"
	"  stop     the guest asked to power off (ACPI power button), killed after a timeout\n"
	"  snapshot a checkpoint of a VM ('virtus vm run --restore DIR' continues it)\n"
	"  console  attach to a detached VM's console\n"
	"  logs     a detached VM's console output\n"
	"  api      one request to a VM's API\n"
	"('virtus vm ls --help' describes ls to api.)\n";

static bool is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

static int unknown(const char *what, const char *text)
{
	fprintf(stderr, "virtus: unknown command '%s'\n%s", what, text);
	return EXIT_USAGE;
}

static bool is_manage_verb(const char *verb)
{
	static const char *const verbs[] = { "ls", "info", "metrics", "pause", "resume", "kill", "stop", "snapshot", "migrate", "balloon", "disk",
					     "cd", "net", "console", "logs", "api" };
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verb, verbs[i]))
			return true;
	return false;
}

/* `virtus help [vm [run|probe|ls...]]`: the usage of that command, on stdout. */
static int cmd_help(int argc, char **argv)
{
	const char *text = usage;
	if (argc >= 2 && strcmp(argv[1], "vm"))
		return unknown(argv[1], usage);
	if (argc >= 2)
		text = vm_usage;
	if (argc >= 3 && !strcmp(argv[2], "run"))
		text = vm_run_usage;
	else if (argc >= 3 && !strcmp(argv[2], "probe"))
		text = vm_probe_usage;
	else if (argc >= 3 && is_manage_verb(argv[2]))
		text = vm_manage_usage;
	else if (argc >= 3)
		return unknown(argv[2], vm_usage);
	fputs(text, stdout);
	return 0;
}

static int cmd_vm(int argc, char **argv)
{
	if (argc < 2) {
		fputs(vm_usage, stderr);
		return EXIT_USAGE;
	}
	if (is_help(argv[1])) {
		fputs(vm_usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_vm_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "probe"))
		return cmd_vm_probe(argc - 1, argv + 1);
	int rc = cmd_vm_manage(argc - 1, argv + 1);
	if (rc >= 0)
		return rc;
	fprintf(stderr, "virtus: unknown command 'vm %s'\n%s", argv[1], vm_usage);
	return EXIT_USAGE;
}

/* Container and image commands, each dispatched with the global options. */
static const char *const container_commands[] = {
	"run", "ps", "logs", "exec", "stop", "kill", "start", "rm", "pause", "unpause", "inspect", "diff", "commit",
};

static int dispatch_store_command(const struct cli_globals *g, int argc, char **argv, bool *found)
{
	*found = true;
	if (!strcmp(argv[0], "image"))
		return store_command("cmd_image", g, argc, argv);
	if (!strcmp(argv[0], "build"))
		return store_command("cmd_build", g, argc, argv);
	if (!strcmp(argv[0], "serve"))
		return store_command("cmd_serve", g, argc, argv);
	for (size_t i = 0; i < sizeof(container_commands) / sizeof(container_commands[0]); i++)
		if (!strcmp(argv[0], container_commands[i]))
			return store_command("cmd_container", g, argc, argv);
	*found = false;
	return 0;
}

/* Global options come before the command: --root DIR (or --root=DIR). Returns how many argv entries they used,
 * or -1 after a usage error. */
static int parse_globals(int argc, char **argv, struct cli_globals *g)
{
	int i = 1;
	while (i < argc && !strncmp(argv[i], "--root", 6)) {
		if (argv[i][6] == '=') {
			g->root = argv[i] + 7;
			i++;
		} else if (argv[i][6] == '\0' && i + 1 < argc) {
			g->root = argv[i + 1];
			i += 2;
		} else {
			fprintf(stderr, "virtus: --root needs a directory\n%s", usage);
			return -1;
		}
		if (!*g->root) {
			fprintf(stderr, "virtus: --root needs a directory\n");
			return -1;
		}
	}
	return i - 1;
}

int main(int argc, char **argv)
{
	struct cli_globals g = { 0 };
	int used = parse_globals(argc, argv, &g);
	if (used < 0)
		return EXIT_USAGE;
	argc -= used;
	argv += used;
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (is_help(argv[1])) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "help"))
		return cmd_help(argc - 1, argv + 1);
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("virtus %s\n", VIRTUS_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "vm"))
		return cmd_vm(argc - 1, argv + 1);
	bool found;
	int rc = dispatch_store_command(&g, argc - 1, argv + 1, &found);
	return found ? rc : unknown(argv[1], usage);
}
