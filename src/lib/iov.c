#include "lib/iov.h"

#include <string.h>

#include "lib/util.h"

uint64_t iov_total(const struct iovec *iov, unsigned n)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += iov[i].iov_len;
	return total;
}

/* Copy the bytes [off, off + len) of iov[] to buf (to_buf) or from it, one contiguous piece at a time. */
static size_t iov_walk(const struct iovec *iov, unsigned n, uint64_t off, uint8_t *buf, size_t len, bool to_buf)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t k = (size_t)MIN(iov[i].iov_len - off, len - done);
		uint8_t *seg = (uint8_t *)iov[i].iov_base + off;
		if (to_buf)
			memcpy(buf + done, seg, k);
		else
			memcpy(seg, buf + done, k);
		done += k;
		off = 0;
	}
	return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, uint64_t off, void *buf, size_t len)
{
	return iov_walk(iov, n, off, buf, len, true);
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, uint64_t off, const void *buf, size_t len)
{
	return iov_walk(iov, n, off, (uint8_t *)buf, len, false);
}

unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len, struct iovec *out, unsigned max)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len && k < max; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t take = (size_t)MIN(iov[i].iov_len - off, len);
		out[k++] = (struct iovec){ .iov_base = (uint8_t *)iov[i].iov_base + off, .iov_len = take };
		len -= take;
		off = 0;
	}
	return k;
}

size_t iov_zero(const struct iovec *iov, unsigned n, uint64_t off, size_t len)
{
	struct iovec part[64];
	size_t zeroed = 0;
	while (zeroed < len) {
		unsigned k = iov_slice(iov, n, off + zeroed, len - zeroed, part, 64);
		if (k == 0)
			break;
		for (unsigned i = 0; i < k; i++) {
			memset(part[i].iov_base, 0, part[i].iov_len);
			zeroed += part[i].iov_len;
		}
	}
	return zeroed;
}
