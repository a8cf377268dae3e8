/* Copying between flat buffers and scatter-gather lists (a virtqueue chain's checked iovecs, mostly). */
#ifndef VIRTUS_IOV_H
#define VIRTUS_IOV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Sum of the segment lengths (64-bit: a chain of many 4 GiB segments does not wrap it). */
uint64_t iov_total(const struct iovec *iov, unsigned n);
/* Copy up to len bytes starting at byte off of iov[] into buf; returns the bytes copied (fewer when iov[]
 * ends first). */
size_t iov_to_buf(const struct iovec *iov, unsigned n, uint64_t off, void *buf, size_t len);
/* Copy up to len bytes of buf into iov[] starting at its byte off; returns the bytes copied. */
size_t iov_from_buf(const struct iovec *iov, unsigned n, uint64_t off, const void *buf, size_t len);
/* Zero up to len bytes of iov[] starting at its byte off; returns the bytes zeroed. */
size_t iov_zero(const struct iovec *iov, unsigned n, uint64_t off, size_t len);
/* The bytes [off, off + len) of iov[] (or as many as exist) as a new list in out[], at most max entries;
 * returns its count. No data is copied: out[] points into the same buffers. */
unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len, struct iovec *out, unsigned max);

#endif
