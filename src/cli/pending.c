/* Scaffolding while issue 9 is built in parallel: each command's real implementation (a strong symbol in its
 * own file) replaces these. This file is deleted when all of them have landed. */
#include <stdio.h>

#include "cli/cli.h"

static int pending(const char *what)
{
	fprintf(stderr, "virtus: '%s' is not available in this build\n", what);
	return EXIT_USAGE;
}

__attribute__((weak)) int cmd_image(const struct cli_globals *g, int argc, char **argv)
{
	(void)g, (void)argc;
	return pending(argv[0]);
}

__attribute__((weak)) int cmd_build(const struct cli_globals *g, int argc, char **argv)
{
	(void)g, (void)argc;
	return pending(argv[0]);
}

__attribute__((weak)) int cmd_container(const struct cli_globals *g, int argc, char **argv)
{
	(void)g, (void)argc;
	return pending(argv[0]);
}
