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
	/* Compose in a buffer large enough for both parts, then truncate into the message. */
	char both[2 * VT_ERR_MSG_MAX + 2];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(both, VT_ERR_MSG_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n >= VT_ERR_MSG_MAX)
		n = VT_ERR_MSG_MAX - 1;
	memcpy(both + n, ": ", 2);
	memcpy(both + n + 2, err->msg, VT_ERR_MSG_MAX);
	both[sizeof(both) - 1] = '\0';
	memcpy(err->msg, both, VT_ERR_MSG_MAX - 1);
	err->msg[VT_ERR_MSG_MAX - 1] = '\0';
	return -1;
}
