/* -p and --network parsing: accepted forms with their fields, and every rejected form with its message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "container/net.h"

static void port_plain(void **state)
{
	(void)state;
	struct cnet_port p;
	vt_err err;
	assert_int_equal(cnet_parse_port("8080:80", &p, &err), 0);
	assert_string_equal(p.host_addr, "");
	assert_int_equal(p.host_port, 8080);
	assert_int_equal(p.ctr_port, 80);
	assert_false(p.udp);
	assert_int_equal(cnet_parse_port("1:65535/tcp", &p, &err), 0);
	assert_int_equal(p.host_port, 1);
	assert_int_equal(p.ctr_port, 65535);
	assert_false(p.udp);
}

static void port_with_address(void **state)
{
	(void)state;
	struct cnet_port p;
	vt_err err;
	assert_int_equal(cnet_parse_port("127.0.0.1:8080:80/udp", &p, &err), 0);
	assert_string_equal(p.host_addr, "127.0.0.1");
	assert_int_equal(p.host_port, 8080);
	assert_int_equal(p.ctr_port, 80);
	assert_true(p.udp);
	assert_int_equal(cnet_parse_port("[::1]:8080:80", &p, &err), 0);
	assert_string_equal(p.host_addr, "::1");
	assert_int_equal(p.host_port, 8080);
	assert_int_equal(p.ctr_port, 80);
	assert_false(p.udp);
}

static void port_rejects(void **state)
{
	(void)state;
	static const struct { const char *spec, *msg; } bad[] = {
		{ "0:80", "host port '0' is not a number from 1 to 65535" },
		{ "70000:80", "host port '70000' is not a number from 1 to 65535" },
		{ "8080:0", "container port '0' is not a number from 1 to 65535" },
		{ "a:b", "host port 'a' is not a number" },
		{ "8080:80/sctp", "protocol 'sctp' is not tcp or udp" },
		{ "8080", "expected [ADDR:]HOSTPORT:CTRPORT" },
		{ "", "expected [ADDR:]HOSTPORT:CTRPORT" },
		{ "1.2.3:8080:80", "'1.2.3' is not an IP address" },
		{ "localhost:8080:80", "'localhost' is not an IP address" },
		{ "[::1:8080:80", "an IPv6 address is written [ADDR]" },
		{ "1:2:3:4", "'1:2' is not an IP address" },
		{ "-1:80", "host port '-1'" },
		{ "8080:", "container port ''" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cnet_port p;
		vt_err err = { 0 };
		if (cnet_parse_port(bad[i].spec, &p, &err) == 0)
			fail_msg("accepted '%s'", bad[i].spec);
		if (!strstr(err.msg, bad[i].msg) || !strstr(err.msg, bad[i].spec))
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].spec, err.msg, bad[i].msg);
	}
}

static void modes(void **state)
{
	(void)state;
	enum cnet_mode m;
	vt_err err;
	assert_int_equal(cnet_parse_mode("bridge", &m, &err), 0);
	assert_int_equal(m, CNET_BRIDGE);
	assert_int_equal(cnet_parse_mode("slirp", &m, &err), 0);
	assert_int_equal(m, CNET_SLIRP);
	assert_int_equal(cnet_parse_mode("none", &m, &err), 0);
	assert_int_equal(m, CNET_NONE);
	assert_int_equal(cnet_parse_mode("host", &m, &err), 0);
	assert_int_equal(m, CNET_HOST);
	assert_int_equal(cnet_parse_mode("bridged", &m, &err), -1);
	assert_non_null(strstr(err.msg, "unknown network mode 'bridged'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(port_plain),
		cmocka_unit_test(port_with_address),
		cmocka_unit_test(port_rejects),
		cmocka_unit_test(modes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
