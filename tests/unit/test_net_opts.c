/* --net option parsing: hostfwd forms and defaults, mac=, and every rejected form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "net/net_opts.h"

static const char *ip(struct in_addr a)
{
	return inet_ntoa(a);
}

static void hostfwd_short_form(void **state)
{
	(void)state;
	struct net_hostfwd f;
	vt_err err;
	assert_int_equal(net_hostfwd_parse("tcp:8080-:80", &f, &err), 0);
	assert_false(f.udp);
	assert_string_equal(ip(f.host_addr), "127.0.0.1");
	assert_int_equal(f.host_port, 8080);
	assert_string_equal(ip(f.guest_addr), "10.0.2.15");
	assert_int_equal(f.guest_port, 80);
}

static void hostfwd_with_addresses(void **state)
{
	(void)state;
	struct net_hostfwd f;
	vt_err err;
	assert_int_equal(net_hostfwd_parse("tcp:0.0.0.0:2222-10.0.2.20:22", &f, &err), 0);
	assert_string_equal(ip(f.host_addr), "0.0.0.0");
	assert_int_equal(f.host_port, 2222);
	assert_string_equal(ip(f.guest_addr), "10.0.2.20");
	assert_int_equal(f.guest_port, 22);
	assert_int_equal(net_hostfwd_parse("udp::5353-:53", &f, &err), 0);
	assert_true(f.udp);
	assert_string_equal(ip(f.host_addr), "127.0.0.1");
	assert_int_equal(f.host_port, 5353);
	assert_int_equal(f.guest_port, 53);
}

static void hostfwd_rejects(void **state)
{
	(void)state;
	static const char *bad[] = {
		"8080-:80", "sctp:1-:2", "tcp:8080", "tcp:8080-80", "tcp:-:80", "tcp:8080-:", "tcp:0-:80",
		"tcp:70000-:80", "tcp:8080-:0", "tcp:8080-:65536", "tcp:1.2.3:8080-:80", "tcp:8080-10.0.2:80",
		"tcp:+80-:80", "tcp:80x-:80", "tcp:8080-:80-", "tcp:localhost:8080-:80",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct net_hostfwd f;
		vt_err err = { 0 };
		if (net_hostfwd_parse(bad[i], &f, &err) == 0)
			fail_msg("accepted '%s'", bad[i]);
		assert_non_null(strstr(err.msg, "hostfwd"));
	}
}

static void spec_with_forwards_and_mac(void **state)
{
	(void)state;
	struct net_opts o;
	vt_err err;
	assert_int_equal(net_opts_parse("user,hostfwd=tcp:8080-:80,mac=52:54:00:aa:bb:cc,hostfwd=tcp:2222-:22", &o, &err), 0);
	assert_int_equal(o.kind, NET_USER);
	assert_int_equal(o.nfwd, 2);
	assert_int_equal(o.fwd[1].host_port, 2222);
	assert_true(o.mac_set);
	static const uint8_t want[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };
	assert_memory_equal(o.mac, want, 6);
}

static void default_mac_is_local_unicast(void **state)
{
	(void)state;
	struct net_opts o;
	vt_err err;
	assert_int_equal(net_opts_parse("user", &o, &err), 0);
	assert_false(o.mac_set);
	assert_int_equal(o.nfwd, 0);
	assert_int_equal(o.mac[0], 0x52);
	assert_true(o.mac[0] & 2);    /* locally administered */
	assert_false(o.mac[0] & 1);   /* unicast */
}

/* spec must be refused with a message containing says. */
static void expect_rejected(const char *spec, const char *says)
{
	struct net_opts o;
	vt_err err = { 0 };
	if (net_opts_parse(spec, &o, &err) == 0)
		fail_msg("accepted '%s'", spec);
	if (!strstr(err.msg, says))
		fail_msg("'%s': message '%s' does not say '%s'", spec, err.msg, says);
}

static void spec_rejects(void **state)
{
	(void)state;
	static const struct { const char *spec, *says; } bad[] = {
		{ "", "backend" }, { "tap", "backend" }, { "users", "backend" }, { "hostfwd=tcp:1-:2", "backend" },
		{ "user,bogus=1", "unknown option 'bogus=1'" }, { "user,hostfwd=tcp:1-2", "hostfwd" },
		{ "user,mac=52:54:00:aa:bb", "mac" }, { "user,mac=52:54:00:aa:bb:cc:dd", "mac" },
		{ "user,mac=53:54:00:aa:bb:cc", "multicast" }, { "user,mac=52:54:00:aa:bb:zz", "mac" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_rejected(bad[i].spec, bad[i].says);
}

static void tap_spec(void **state)
{
	(void)state;
	struct net_opts o;
	vt_err err = { 0 };
	assert_int_equal(net_opts_parse("tap=tap0", &o, &err), 0);
	assert_int_equal(o.kind, NET_TAP);
	assert_string_equal(o.ifname, "tap0");
	assert_false(o.mac_set);
	assert_int_equal(o.mac[0], 0x52);
	uint8_t again[6], other[6];
	net_mac_from_name("tap0", again);
	net_mac_from_name("tap1", other);
	assert_memory_equal(o.mac, again, 6);                 /* stable */
	assert_memory_not_equal(o.mac, other, 6);              /* differs per device */
	assert_int_equal(net_opts_parse("tap=t,mac=52:54:00:01:02:03", &o, &err), 0);
	assert_true(o.mac_set);
	static const uint8_t want[6] = { 0x52, 0x54, 0x00, 1, 2, 3 };
	assert_memory_equal(o.mac, want, 6);
	assert_int_equal(net_opts_parse("tap=abcdefghijklmno", &o, &err), 0); /* IFNAMSIZ - 1 characters */
}

static void default_macs_differ_per_device_and_are_stable(void **state)
{
	(void)state;
	struct net_opts a, b, c;
	vt_err err;
	assert_int_equal(net_opts_parse("user", &a, &err), 0);
	assert_int_equal(net_opts_parse("user", &b, &err), 0);
	net_opts_default_mac(&b, 1);
	static const uint8_t first[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 }, second[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x57 };
	assert_memory_equal(a.mac, first, 6);
	assert_memory_equal(b.mac, second, 6);
	assert_int_equal(net_opts_parse("user,mac=52:54:00:aa:bb:cc", &c, &err), 0);
	net_opts_default_mac(&c, 3); /* an explicit mac= stays */
	assert_int_equal(c.mac[3], 0xaa);
}

static void tap_spec_rejects(void **state)
{
	(void)state;
	static const struct { const char *spec, *says; } bad[] = {
		{ "tap=", "needs an interface name" }, { "tap=abcdefghijklmnop", "longer than 15" },
		{ "tap=a/b", "not a valid interface name" }, { "tap=tap0,hostfwd=tcp:8080-:80", "hostfwd= is for --net user" },
		{ "tap=tap0,queues=2", "unknown option 'queues=2' (known: mac=)" }, { "tap=tap0,mac=01:00:00:00:00:00", "multicast" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_rejected(bad[i].spec, bad[i].says);
}

static void too_many_forwards(void **state)
{
	(void)state;
	char spec[1024] = "user";
	for (int i = 0; i <= NET_MAX_HOSTFWD; i++)
		snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), ",hostfwd=tcp:%d-:80", 10000 + i);
	struct net_opts o;
	vt_err err = { 0 };
	assert_int_equal(net_opts_parse(spec, &o, &err), -1);
	assert_non_null(strstr(err.msg, "more than"));
}

/* The guest reaches the host's loopback services only when asked (host-loopback=on). */
static void host_loopback_off_unless_asked(void **state)
{
	(void)state;
	struct net_opts o;
	vt_err err;
	assert_int_equal(net_opts_parse("user", &o, &err), 0);
	assert_false(o.host_loopback);
	assert_int_equal(net_opts_parse("user,host-loopback=on", &o, &err), 0);
	assert_true(o.host_loopback);
	assert_int_equal(net_opts_parse("user,host-loopback=off", &o, &err), 0);
	assert_false(o.host_loopback);
	expect_rejected("user,host-loopback=yes", "host-loopback wants on or off");
	expect_rejected("tap=tap0,host-loopback=on", "unknown option 'host-loopback=on'");
}

#define T(f) cmocka_unit_test(f)
int main(void)
{
	const struct CMUnitTest tests[] = {
		T(hostfwd_short_form), T(hostfwd_with_addresses), T(hostfwd_rejects), T(spec_with_forwards_and_mac),
		T(default_mac_is_local_unicast), T(spec_rejects), T(too_many_forwards), T(tap_spec),
		T(tap_spec_rejects), T(default_macs_differ_per_device_and_are_stable), T(host_loopback_off_unless_asked),
	};
	return cmocka_run_group_tests_name("net_opts", tests, NULL, NULL);
}
