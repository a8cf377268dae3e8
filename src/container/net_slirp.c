/* slirp mode: placeholder until the tap forwarder lands. */
#include <stddef.h>

#include "container/net_int.h"

int cnet_slirp_start(pid_t pid, const struct cnet_config *c, struct cnet_slirp **out, vt_err *err)
{
	(void)pid;
	(void)c;
	*out = NULL;
	return vt_fail(err, "--network slirp is not implemented yet");
}

void cnet_slirp_stop(struct cnet_slirp *s)
{
	(void)s;
}
