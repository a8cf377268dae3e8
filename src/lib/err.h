/* Error object passed upward: the failing function fills a message that says what went wrong,
 * callers add context, and the top level prints it once. No function below the CLI prints or exits. */
#ifndef VIRTUS_ERR_H
#define VIRTUS_ERR_H

#include <stdarg.h>

#define VT_ERR_MSG_MAX 512

typedef struct vt_err {
	int errnum;                 /* errno of the root cause, 0 if none */
	char msg[VT_ERR_MSG_MAX];
} vt_err;

/* Record an error and return -1, so callers can write `return vt_fail(err, ...)`. err may be NULL. */
int vt_fail(vt_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, appending ": strerror(errnum)". */
int vt_fail_errno(vt_err *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefix context to an existing message: "loading kernel: <old message>". */
int vt_err_prefix(vt_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
