/* Content-addressed blobs: image/blobs/sha256/<hex>, written temp + fsync + rename, checked when read. */
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "image/internal.h"
#include "lib/util.h"

/* Nettle's sha256 (SHA-NI where the CPU has it): no library state to set up, where OpenSSL 3 spent ~2 ms of
 * every `virtus run` loading libcrypto and fetching its sha256 for the two small blobs run reads. */
struct img_hash {
	struct sha256_ctx ctx;
};

struct img_hash *img_hash_new(void)
{
	struct img_hash *h = malloc(sizeof(*h));
	if (h)
		sha256_init(&h->ctx);
	return h;
}

void img_hash_update(struct img_hash *h, const void *data, size_t len)
{
	sha256_update(&h->ctx, len, data);
}

void img_hash_final(struct img_hash *h, char out[IMG_ID_LEN + 1])
{
	uint8_t md[SHA256_DIGEST_SIZE];
	sha256_digest(&h->ctx, sizeof(md), md);
	memcpy(out, "sha256:", 7);
	for (unsigned i = 0; i < sizeof(md); i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
	out[IMG_ID_LEN] = '\0';
	img_hash_free(h);
}

void img_hash_free(struct img_hash *h)
{
	free(h);
}

void img_sha256(const void *data, size_t len, char out[IMG_ID_LEN + 1])
{
	struct img_hash *h = img_hash_new();
	if (!h) {
		memset(out, 0, IMG_ID_LEN + 1);
		return;
	}
	img_hash_update(h, data, len);
	img_hash_final(h, out);
}

const char *img_digest_hex(const char *digest)
{
	if (!digest || strncmp(digest, "sha256:", 7) || strlen(digest) != IMG_ID_LEN)
		return NULL;
	for (const char *p = digest + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return NULL;
	return digest + 7;
}

char *img_blob_path(const struct img_store *s, const char *digest)
{
	const char *hex = img_digest_hex(digest);
	return hex ? img_path(s, "image/blobs/sha256/%s", hex) : NULL;
}

int img_blob_tmpfile(struct img_store *s, char **tmp_path, vt_err *err)
{
	char *p = img_path(s, "image/blobs/.tmp-XXXXXX");
	if (!p)
		return vt_fail_errno(err, ENOMEM, "blob");
	int fd = mkostemp(p, O_CLOEXEC);
	if (fd < 0) {
		vt_fail_errno(err, errno, "cannot create %s", p);
		free(p);
		return -1;
	}
	fchmod(fd, 0644);
	*tmp_path = p;
	return fd;
}

int img_blob_adopt(struct img_store *s, const char *tmp_path, const char *digest, struct img_txn *txn, vt_err *err)
{
	cleanup_free char *path = img_blob_path(s, digest);
	if (!path) {
		unlink(tmp_path);
		return vt_fail(err, "bad digest '%s'", digest);
	}
	if (access(path, F_OK) == 0) {
		unlink(tmp_path);
		return 0;
	}
	if (rename(tmp_path, path) < 0) {
		int e = errno;
		unlink(tmp_path);
		return vt_fail_errno(err, e, "cannot store blob %s", digest);
	}
	if (img_txn_add(txn, path) < 0)
		return vt_fail_errno(err, ENOMEM, "blob");
	return 0;
}

int img_blob_put(struct img_store *s, const void *data, size_t len, char digest[IMG_ID_LEN + 1],
		 struct img_txn *txn, vt_err *err)
{
	img_sha256(data, len, digest);
	cleanup_free char *path = img_blob_path(s, digest);
	if (!path)
		return vt_fail_errno(err, ENOMEM, "blob");
	if (access(path, F_OK) == 0)
		return 0;
	if (img_write_atomic(path, data, len, err) < 0)
		return -1;
	if (img_txn_add(txn, path) < 0)
		return vt_fail_errno(err, ENOMEM, "blob");
	return 0;
}

int img_blob_put_json(struct img_store *s, json_object *obj, char digest[IMG_ID_LEN + 1], size_t *size,
		      struct img_txn *txn, vt_err *err)
{
	size_t len;
	const char *text = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
							     &len);
	if (!text)
		return vt_fail_errno(err, ENOMEM, "json");
	if (size)
		*size = len;
	return img_blob_put(s, text, len, digest, txn, err);
}

int img_blob_get(struct img_store *s, const char *digest, void **data, size_t *size, vt_err *err)
{
	cleanup_free char *path = img_blob_path(s, digest);
	if (!path)
		return vt_fail(err, "bad digest '%s'", digest ? digest : "(none)");
	if (read_file(path, IMG_JSON_MAX, data, size, err) < 0)
		return -1;
	char got[IMG_ID_LEN + 1];
	img_sha256(*data, *size, got);
	if (strcmp(got, digest)) {
		free(*data);
		*data = NULL;
		return vt_fail(err, "blob %s is corrupt (its content hashes to %s)", digest, got);
	}
	return 0;
}

json_object *img_json_parse(const void *data, size_t len)
{
	json_tokener *tok = json_tokener_new();
	if (!tok || len > INT32_MAX) {
		json_tokener_free(tok);
		return NULL;
	}
	json_object *obj = json_tokener_parse_ex(tok, data, (int)len);
	if (obj && json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

int img_blob_get_json(struct img_store *s, const char *digest, json_object **out, vt_err *err)
{
	cleanup_free void *data = NULL;
	size_t size;
	if (img_blob_get(s, digest, &data, &size, err) < 0)
		return -1;
	*out = img_json_parse(data, size);
	return *out ? 0 : vt_fail(err, "blob %s is not valid JSON", digest);
}
