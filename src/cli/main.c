/* virtus: git-style dispatch to the commands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define VIRTUS_VERSION "0.1.0"

static const char usage[] =
	"usage: virtus <command> [options]\n"
	"\n"
	"  vm run     boot a Linux kernel (or the default guest) in a KVM microVM\n"
	"  vm probe   say whether this host's KVM can run guest kernels natively\n"
	"  version    print the version\n"
	"\n"
	"'virtus vm run --help' describes the options.\n";

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("virtus %s\n", VIRTUS_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "vm") && argc >= 3) {
		if (!strcmp(argv[2], "run"))
			return cmd_vm_run(argc - 2, argv + 2);
		if (!strcmp(argv[2], "probe"))
			return cmd_vm_probe(argc - 2, argv + 2);
	}
	fprintf(stderr, "virtus: unknown command '%s%s%s'\n%s", argv[1], argc >= 3 ? " " : "", argc >= 3 ? argv[2] : "", usage);
	return EXIT_USAGE;
}
