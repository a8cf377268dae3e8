#include "lib/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void vformat(vt_err *err, const char *fmt, va_list ap)
{
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int vt_fail(vt_err *err, const char *fmt, ...)
{
	if (!err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vformat(err, fmt, ap);
	va_end(ap);
	err->errnum = 0;
	return -1;
}

int vt_fail_errno(vt_err *err, int errnum, const char *fmt, ...)
{
	if (!err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vformat(err, fmt, ap);
	va_end(ap);
	size_t n = strlen(err->msg);
	snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
	err->errnum = errnum;
	return -1;
}

int vt_err_prefix(vt_err *err, const char *fmt, ...)
{
	if (!err)
		return -1;
	char prefix[VT_ERR_MSG_MAX], old[VT_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	return -1;
}
