/* linux.seccomp from config.json, compiled with libseccomp. */
#ifndef VIRTUS_RT_SECCOMP_H
#define VIRTUS_RT_SECCOMP_H

#include <json-c/json.h>

#include "lib/err.h"

struct rt_seccomp;

/* Validate and compile linux.seccomp (defaultAction, architectures, syscalls with args, flags).
 * Unknown syscall names are errors (the OCI spec does not ask runtimes to skip them); SCMP_ACT_NOTIFY
 * is refused; listenerPath is ignored as the spec allows when NOTIFY is not used.
 * Errors name the offending field, e.g. "linux.seccomp.syscalls[2].names[0]: unknown syscall 'foo'". */
int rt_seccomp_prepare(json_object *seccomp, struct rt_seccomp **out, vt_err *err);

/* Load the filter into the calling process: the last step before execve. The filter does not set
 * no_new_privs itself (that is process.noNewPrivileges' job): without it the caller must still hold
 * CAP_SYS_ADMIN, so load before dropping capabilities in that case. */
int rt_seccomp_apply(struct rt_seccomp *sc, vt_err *err);

void rt_seccomp_free(struct rt_seccomp *sc);

#endif
