/* Small shared helpers: scope-bound cleanup, checked arithmetic, file reading, size parsing. */
#ifndef VIRTUS_UTIL_H
#define VIRTUS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/err.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define SWAP(a, b) do { __typeof__(a) swap_tmp_ = (a); (a) = (b); (b) = swap_tmp_; } while (0)
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

static inline void freep(void *p) { free(*(void **)p); }
/* Close and forget: the variable is -1 afterwards, so that a later closep (a cleanup, a poll set built from
 * it) never touches a descriptor that has the same number by then. */
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); *fd = -1; }
#define cleanup_free __attribute__((cleanup(freep)))
#define cleanup_close __attribute__((cleanup(closep)))

/* Hand ownership out of a cleanup-tagged variable. */
#define steal_ptr(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define steal_fd(fd) ({ int _t = (fd); (fd) = -1; _t; })

/* Read a whole regular file (at most max_size bytes) into a malloc'd buffer, with a NUL after its size bytes. */
int read_file(const char *path, size_t max_size, void **data, size_t *size, vt_err *err);

/* Parse "512M", "2G", "4096K", "123" (bytes) into bytes. Rejects junk, overflow and zero. */
int parse_size(const char *s, uint64_t *bytes, vt_err *err);
/* Parse a decimal unsigned integer in [min, max]. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Write all of buf, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);
/* Read exactly len bytes, retrying on EINTR and short reads; -1 with errno set (ECONNRESET: the end came
 * first). */
int read_all(int fd, void *buf, size_t len);

/* Has the directory no entry but . and ..? (false when it cannot be read) */
bool dir_is_empty(const char *path);
/* mkdir (an existing dir is fine), and where the dir is not on a tmpfs and still empty, mount one on it
 * (root only; without the right the dir serves as it is). For state that must not outlive a boot and is
 * made and removed often: on a disk each file made costs an inode allocation; some hosts keep /run on
 * theirs. Under a flock of the dir beneath, so that two first users do not stack two mounts. */
int mkdir_on_tmpfs(const char *dir, mode_t mode);

/* Monotonic time in nanoseconds. */
uint64_t now_ns(void);

#endif
