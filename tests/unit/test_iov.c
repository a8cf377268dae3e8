/* src/lib/iov.c: copies across segment boundaries, from an offset, and when the list ends first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lib/iov.h"

/* Three segments of 3, 0 and 5 bytes over one backing array "abcdefgh". */
struct segs {
	char backing[9];
	struct iovec iov[3];
};

static void segs_init(struct segs *s)
{
	memcpy(s->backing, "abcdefgh", 9);
	s->iov[0] = (struct iovec){ s->backing, 3 };
	s->iov[1] = (struct iovec){ s->backing + 3, 0 };
	s->iov[2] = (struct iovec){ s->backing + 3, 5 };
}

static void total_sums_segments(void **state)
{
	(void)state;
	struct segs s;
	segs_init(&s);
	assert_int_equal(iov_total(s.iov, 3), 8);
	assert_int_equal(iov_total(s.iov, 0), 0);
}

static void to_buf_crosses_segments_from_offset(void **state)
{
	(void)state;
	struct segs s;
	segs_init(&s);
	char out[8] = { 0 };
	assert_int_equal(iov_to_buf(s.iov, 3, 2, out, 4), 4);
	assert_memory_equal(out, "cdef", 4);
}

static void to_buf_stops_where_the_list_ends(void **state)
{
	(void)state;
	struct segs s;
	segs_init(&s);
	char out[16];
	memset(out, 'x', sizeof(out));
	assert_int_equal(iov_to_buf(s.iov, 3, 6, out, sizeof(out)), 2);
	assert_memory_equal(out, "ghxx", 4);
	assert_int_equal(iov_to_buf(s.iov, 3, 8, out, 1), 0);
	assert_int_equal(iov_to_buf(s.iov, 3, 1000, out, 1), 0);
}

static void from_buf_writes_only_the_range(void **state)
{
	(void)state;
	struct segs s;
	segs_init(&s);
	assert_int_equal(iov_from_buf(s.iov, 3, 1, "XYZW", 4), 4);
	assert_string_equal(s.backing, "aXYZWfgh");
	assert_int_equal(iov_from_buf(s.iov, 3, 7, "12", 2), 1);
	assert_string_equal(s.backing, "aXYZWfg1");
}

static void slice_points_into_the_segments(void **state)
{
	(void)state;
	struct segs s;
	segs_init(&s);
	struct iovec out[3];
	assert_int_equal(iov_slice(s.iov, 3, 2, 3, out, 3), 2); /* "c" | "de", the empty segment skipped */
	assert_ptr_equal(out[0].iov_base, s.backing + 2);
	assert_int_equal(out[0].iov_len, 1);
	assert_ptr_equal(out[1].iov_base, s.backing + 3);
	assert_int_equal(out[1].iov_len, 2);
	assert_int_equal(iov_slice(s.iov, 3, 0, 8, out, 1), 1); /* max entries respected */
	assert_int_equal(out[0].iov_len, 3);
	assert_int_equal(iov_slice(s.iov, 3, 7, 100, out, 3), 1); /* clipped at the end */
	assert_int_equal(out[0].iov_len, 1);
	assert_int_equal(iov_slice(s.iov, 3, 8, 1, out, 3), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(total_sums_segments),
		cmocka_unit_test(to_buf_crosses_segments_from_offset),
		cmocka_unit_test(to_buf_stops_where_the_list_ends),
		cmocka_unit_test(from_buf_writes_only_the_range),
		cmocka_unit_test(slice_points_into_the_segments),
	};
	return cmocka_run_group_tests_name("iov", tests, NULL, NULL);
}
