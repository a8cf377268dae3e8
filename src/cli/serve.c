/* `virtus serve`: the browser console (docs/serve.md). In libvirtus-store.so: it lists containers and images. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "serve/serve.h"

static const char serve_usage[] =
	"usage: virtus serve [--listen ADDR:PORT] [--tls-cert FILE --tls-key FILE] [--iso-dir DIR] [--token-file FILE]\n"
	"\n"
	"Serve the browser console: this host's VMs, containers and images in a web page, with their consoles.\n"
	"Prints the URL to open, with the login token in it; runs until interrupted.\n"
	"\n"
	"  --listen ADDR:PORT    where to listen (default " SERVE_DEFAULT_LISTEN "; IPv6: [::1]:8006; port 0: any)\n"
	"  --tls-cert FILE       HTTPS with this PEM certificate (and --tls-key, its key)\n"
	"  --tls-key FILE\n"
	"  --iso-dir DIR         the ISO images the page offers for CD drives (default <root>/isos)\n"
	"  --token-file FILE     the login token, made if missing, mode 0600 (default <root>/serve/token)\n"
	"  -h, --help            print this help\n";

int cmd_serve(const struct cli_globals *g, int argc, char **argv)
{
	static const struct option longs[] = {
		{ "listen", required_argument, NULL, 'l' },   { "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },  { "iso-dir", required_argument, NULL, 'i' },
		{ "token-file", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct serve_options o = { .root = g->root, .listen = SERVE_DEFAULT_LISTEN };
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", longs, NULL)) != -1) {
		switch (c) {
		case 'l': o.listen = optarg; break;
		case 'c': o.tls_cert = optarg; break;
		case 'k': o.tls_key = optarg; break;
		case 'i': o.iso_dir = optarg; break;
		case 't': o.token_file = optarg; break;
		case 'h': fputs(serve_usage, stdout); return 0;
		default:
			fprintf(stderr, "virtus serve: %s %s\n%s", optopt ? "option needs a value:" : "unknown option",
				argv[optind - 1], serve_usage);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "virtus serve: unexpected argument '%s'\n%s", argv[optind], serve_usage);
		return EXIT_USAGE;
	}
	struct serve s = { 0 };
	vt_err err = { 0 };
	int rc = serve_check_options(&o, &err) || serve_init(&s, &o, &err) || serve_run(&s, &o, &err);
	if (rc)
		fprintf(stderr, "virtus serve: %s\n", err.msg);
	serve_fini(&s);
	return rc ? 1 : 0;
}
