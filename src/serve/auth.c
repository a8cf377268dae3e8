/* The login token and the wrong-token limit (serve/auth.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/auth.h"
#include "lib/util.h"

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int make_parents(const char *path, vt_err *err)
{
	char dir[4096];
	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return vt_fail(err, "token file path too long: %s", path);
	for (char *p = dir + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return vt_fail_errno(err, errno, "cannot create %s", dir);
		*p = '/';
	}
	return 0;
}

/* A new token written to path through a temporary file, so that no reader sees half of one. */
static int create_token(const char *path, char token[SERVE_TOKEN_LEN + 1], vt_err *err)
{
	unsigned char raw[SERVE_TOKEN_LEN / 2];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return vt_fail_errno(err, errno, "getrandom");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(token + 2 * i, 3, "%02x", raw[i]);
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	if (make_parents(path, err))
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot create the token file %s", tmp);
	char line[SERVE_TOKEN_LEN + 2];
	snprintf(line, sizeof(line), "%s\n", token);
	bool ok = write_all(fd, line, SERVE_TOKEN_LEN + 1) == 0 && fsync(fd) == 0;
	int saved = errno;
	close(fd);
	if (!ok || rename(tmp, path) < 0) {
		saved = ok ? errno : saved;
		unlink(tmp);
		return vt_fail_errno(err, saved, "cannot write the token file %s", path);
	}
	return 0;
}

int serve_token_load(const char *path, char token[SERVE_TOKEN_LEN + 1], vt_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return create_token(path, token, err);
	if (fd < 0)
		return vt_fail_errno(err, errno, "cannot open the token file %s", path);
	struct stat st;
	char buf[SERVE_TOKEN_LEN + 2];
	ssize_t n = fstat(fd, &st) == 0 ? read(fd, buf, sizeof(buf)) : -1;
	int saved = errno;
	close(fd);
	if (n < 0)
		return vt_fail_errno(err, saved, "cannot read the token file %s", path);
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) || st.st_uid != geteuid())
		return vt_fail(err, "the token file %s must be a regular file of this user with mode 0600 (it is %o): "
			       "fix it, or remove it for a new token", path, (unsigned)(st.st_mode & 07777));
	if (n < SERVE_TOKEN_LEN || !all_hex(buf, SERVE_TOKEN_LEN) ||
	    (n > SERVE_TOKEN_LEN && !(n == SERVE_TOKEN_LEN + 1 && buf[SERVE_TOKEN_LEN] == '\n')))
		return vt_fail(err, "the token file %s does not hold 64 hex digits: remove it for a new token", path);
	memcpy(token, buf, SERVE_TOKEN_LEN);
	token[SERVE_TOKEN_LEN] = '\0';
	return 0;
}

bool serve_token_matches(const char *token, const char *given)
{
	if (!given || strnlen(given, SERVE_TOKEN_LEN + 1) != SERVE_TOKEN_LEN)
		return false;
	unsigned char diff = 0;
	for (size_t i = 0; i < SERVE_TOKEN_LEN; i++)
		diff |= (unsigned char)(token[i] ^ given[i]);
	return diff == 0;
}

void serve_limiter_init(struct serve_limiter *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
}

/* The slot of addr, or -1. Called with the lock held. */
static int find_slot(const struct serve_limiter *l, const char *addr)
{
	for (int i = 0; i < SERVE_LIMITER_SLOTS; i++)
		if (l->slot[i].addr[0] && !strcmp(l->slot[i].addr, addr))
			return i;
	return -1;
}

bool serve_limiter_blocked(struct serve_limiter *l, const char *addr, time_t now)
{
	pthread_mutex_lock(&l->lock);
	int i = find_slot(l, addr);
	bool blocked = i >= 0 && now - l->slot[i].since < SERVE_FAIL_WINDOW_S && l->slot[i].fails >= SERVE_FAILS_ALLOWED;
	pthread_mutex_unlock(&l->lock);
	return blocked;
}

void serve_limiter_fail(struct serve_limiter *l, const char *addr, time_t now)
{
	pthread_mutex_lock(&l->lock);
	int i = find_slot(l, addr);
	if (i < 0) {
		i = 0; /* a free slot, else the one whose window began first */
		for (int k = 0; k < SERVE_LIMITER_SLOTS && l->slot[i].addr[0]; k++)
			if (!l->slot[k].addr[0] || l->slot[k].since < l->slot[i].since)
				i = k;
		snprintf(l->slot[i].addr, sizeof(l->slot[i].addr), "%s", addr);
		l->slot[i].fails = 0;
		l->slot[i].since = now;
	}
	if (now - l->slot[i].since >= SERVE_FAIL_WINDOW_S) {
		l->slot[i].since = now;
		l->slot[i].fails = 0;
	}
	l->slot[i].fails++;
	pthread_mutex_unlock(&l->lock);
}
