/* The snapshot state file (lib/state_file.h): what is written reads back, and every malformed file is
 * refused with a message, never read past its end. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/state_file.h"
#include "lib/util.h"

static char dir[] = "/tmp/virtus-state-XXXXXX";
static char path[64];

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/state", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static void write_sample(void)
{
	struct state_writer w;
	vt_err err;
	unlink(path);
	assert_int_equal(state_writer_open(&w, path, &err), 0);
	uint32_t a = 0x11223344;
	state_put(&w, "alpha", 1, &a, sizeof(a));
	state_put(&w, "beta", 2, "hello", 5); /* padded to 8 */
	state_put(&w, "empty", 1, NULL, 0);
	assert_int_equal(state_writer_finish(&w, &err), 0);
}

static void round_trip(void **state)
{
	(void)state;
	write_sample();
	struct state_reader r;
	vt_err err;
	assert_int_equal(state_reader_open(&r, path, &err), 0);
	uint32_t a = 0;
	char b[5];
	assert_int_equal(state_get(&r, "alpha", 1, &a, sizeof(a), &err), 0);
	assert_int_equal(a, 0x11223344);
	assert_int_equal(state_get(&r, "beta", 2, b, sizeof(b), &err), 0);
	assert_memory_equal(b, "hello", 5);
	const struct state_section *e = state_find(&r, "empty", 1, &err);
	assert_non_null(e);
	assert_int_equal(e->len, 0);
	state_reader_close(&r);
}

/* The in-memory writer and reader (migration) make and read the same bytes as the file ones. */
static void memory_round_trip_matches_the_file(void **state)
{
	(void)state;
	write_sample();
	struct state_writer w;
	uint8_t *data;
	size_t len;
	vt_err err;
	state_writer_open_memory(&w);
	uint32_t a = 0x11223344;
	state_put(&w, "alpha", 1, &a, sizeof(a));
	state_put(&w, "beta", 2, "hello", 5);
	state_put(&w, "empty", 1, NULL, 0);
	assert_int_equal(state_writer_take(&w, &data, &len, &err), 0);
	void *file;
	size_t file_len;
	assert_int_equal(read_file(path, STATE_FILE_MAX, &file, &file_len, &err), 0);
	assert_int_equal(len, file_len);
	assert_memory_equal(data, file, len);
	free(file);
	struct state_reader r;
	char b[5];
	assert_int_equal(state_reader_open_memory(&r, data, len, "the stream", &err), 0);
	assert_int_equal(state_get(&r, "beta", 2, b, sizeof(b), &err), 0);
	assert_memory_equal(b, "hello", 5);
	state_reader_close(&r);
	uint8_t *junk = malloc(8);
	assert_non_null(junk);
	memcpy(junk, "VIRTUSXX", 8);
	assert_int_equal(state_reader_open_memory(&r, junk, 8, "the stream", &err), -1);
	assert_non_null(strstr(err.msg, "the stream is not a virtus snapshot state file"));
}

static void wrong_version_length_or_name_is_refused(void **state)
{
	(void)state;
	write_sample();
	struct state_reader r;
	vt_err err;
	assert_int_equal(state_reader_open(&r, path, &err), 0);
	uint64_t big;
	uint32_t a;
	assert_int_equal(state_get(&r, "alpha", 2, &a, sizeof(a), &err), -1);
	assert_non_null(strstr(err.msg, "alpha has version 1"));
	assert_int_equal(state_get(&r, "alpha", 1, &big, sizeof(big), &err), -1);
	assert_non_null(strstr(err.msg, "has 4 bytes, expected 8"));
	assert_int_equal(state_get(&r, "gamma", 1, &a, sizeof(a), &err), -1);
	assert_non_null(strstr(err.msg, "no gamma section"));
	state_reader_close(&r);
}

static void existing_file_is_not_overwritten(void **state)
{
	(void)state;
	write_sample();
	struct state_writer w;
	vt_err err;
	assert_int_equal(state_writer_open(&w, path, &err), -1);
	assert_non_null(strstr(err.msg, "cannot create"));
}

/* Every prefix of a good file, and files with damaged headers, are refused without reading past the end. */
static void damaged_files_are_refused(void **state)
{
	(void)state;
	write_sample();
	void *data;
	size_t size;
	vt_err err;
	assert_int_equal(read_file(path, 4096, &data, &size, &err), 0);
	uint8_t *good = data;
	char damaged[96];
	snprintf(damaged, sizeof(damaged), "%s/damaged", dir);
	struct state_reader r;
	for (size_t len = 0; len < size; len++) {
		int fd = open(damaged, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write_all(fd, good, len), 0);
		close(fd);
		assert_int_equal(state_reader_open(&r, damaged, &err), -1);
	}
	uint8_t *copy = malloc(size);
	memcpy(copy, good, size);
	copy[8] = 9; /* format version */
	int fd = open(damaged, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write_all(fd, copy, size), 0);
	close(fd);
	assert_int_equal(state_reader_open(&r, damaged, &err), -1);
	assert_non_null(strstr(err.msg, "format 9"));
	memcpy(copy, good, size);
	memset(copy + 16 + 32, 0xff, 8); /* the first section's length: far past the end */
	fd = open(damaged, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write_all(fd, copy, size), 0);
	close(fd);
	assert_int_equal(state_reader_open(&r, damaged, &err), -1);
	assert_non_null(strstr(err.msg, "runs past the end"));
	memcpy(copy, good, size);
	memset(copy + 16, 'x', 24); /* an unterminated name */
	fd = open(damaged, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write_all(fd, copy, size), 0);
	close(fd);
	assert_int_equal(state_reader_open(&r, damaged, &err), -1);
	assert_non_null(strstr(err.msg, "not terminated"));
	unlink(damaged);
	free(copy);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(memory_round_trip_matches_the_file),
		cmocka_unit_test(wrong_version_length_or_name_is_refused),
		cmocka_unit_test(existing_file_is_not_overwritten),
		cmocka_unit_test(damaged_files_are_refused),
	};
	return cmocka_run_group_tests_name("state_file", tests, setup, teardown);
}
