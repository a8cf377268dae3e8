/* libFuzzer target for the config.json parser: any bytes in, either a spec or a field-named error out,
 * never a crash, leak or undefined behaviour. Build and run: tests/fuzz/run-fuzz-spec.sh [seconds]. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/rt.h"

static char bundle[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* root.path must resolve: give the parser a real bundle with a rootfs directory. */
	const char *tmp = getenv("TMPDIR");
	if (snprintf(bundle, sizeof(bundle), "%s/vt-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp") >= (int)sizeof(bundle))
		strcpy(bundle, "/tmp/vt-fuzz-XXXXXX");
	if (!mkdtemp(bundle))
		abort();
	char rootfs[96];
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", bundle);
	mkdir(rootfs, 0755);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rt_spec *s = NULL;
	vt_err err = { 0 };
	if (rt_spec_parse(bundle, (const char *)data, size, &s, &err) == 0) {
		if (!s || !s->process.args || !s->process.args[0])
			abort(); /* a successful parse always names a program */
		rt_spec_free(s);
	} else if (!err.msg[0]) {
		abort(); /* every failure says why */
	}
	return 0;
}
