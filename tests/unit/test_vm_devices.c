/* The device configuration that travels with snapshots and migrations (api/vm_devices.h), and the socket
 * URLs migration uses (lib/sock_url.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "api/vm_devices.h"
#include "lib/sock_url.h"
#include "lib/util.h"
#include "net/net_opts.h"

static struct vm_config source(void)
{
	return (struct vm_config){
		.rng = true, .balloon = true, .balloon_size = 16 * MiB, .balloon_stats_s = 5, .ndisks = 3,
		.disk = { { .path = "/img/a", .serial = "root", .format = BLK_FORMAT_QCOW2, .layer = "disk0.raw" },
			  { .path = "/img/b", .readonly = true, .format = BLK_FORMAT_RAW }, { .path = "/img/c" } },
		.nnets = 1, .net = { "user,hostfwd=tcp:127.0.0.1:8080-:80" }, .vsock_cid = 7, .vsock_path = "/run/v.sock",
	};
}

/* src's devices written and read into dst (st keeps dst's strings). */
static void round_trip(const struct vm_config *src, struct vm_config *dst, struct vm_devices_store *st)
{
	vt_err err;
	char *text = vm_devices_to_json(src);
	assert_non_null(text);
	if (vm_devices_from_json(text, dst, st, &err) < 0)
		fail_msg("vm_devices_from_json: %s", err.msg);
	free(text);
}

static void everything_travels(void **state)
{
	(void)state;
	struct vm_config src = source(), dst = { .ncpus = 1 };
	struct vm_devices_store st;
	round_trip(&src, &dst, &st);
	assert_true(dst.rng);
	assert_false(dst.virtio_console);
	assert_true(dst.balloon);
	assert_int_equal(dst.balloon_size, 16 * MiB);
	assert_int_equal(dst.balloon_stats_s, 5);
	assert_int_equal(dst.ndisks, 3);
	assert_string_equal(dst.disk[0].path, "/img/a");
	assert_string_equal(dst.disk[0].serial, "root");
	assert_false(dst.disk[0].readonly);
	assert_true(dst.disk[1].readonly);
	assert_null(dst.disk[1].serial);
	assert_int_equal(dst.disk[0].format, BLK_FORMAT_QCOW2);   /* a stated format stays stated */
	assert_int_equal(dst.disk[1].format, BLK_FORMAT_RAW);
	assert_string_equal(dst.disk[0].layer, "disk0.raw");      /* a snapshot's frozen image */
	assert_null(dst.disk[1].layer);
	assert_int_equal(dst.disk[2].format, BLK_FORMAT_AUTO);    /* probed again, as at the source */
	assert_int_equal(dst.nnets, 1);
	assert_string_equal(dst.net[0], "user,hostfwd=tcp:127.0.0.1:8080-:80");
	assert_int_equal(dst.vsock_cid, 7);
	assert_string_equal(dst.vsock_path, "/run/v.sock");
}

/* A balloon whose target is 0 is still a balloon (its target may grow later); a configuration written
 * before "balloon" existed had one exactly when its target was not 0. */
static void a_balloon_without_a_target_travels(void **state)
{
	(void)state;
	struct vm_config src = { .balloon = true }, dst = { 0 };
	struct vm_devices_store st;
	vt_err err;
	round_trip(&src, &dst, &st);
	assert_true(dst.balloon);
	assert_int_equal(dst.balloon_size, 0);
	dst = (struct vm_config){ 0 };
	assert_int_equal(vm_devices_from_json("{\"balloon_mib\": 0, \"balloon_stats_s\": 0}", &dst, &st, &err), 0);
	assert_false(dst.balloon);
	assert_int_equal(vm_devices_from_json("{\"balloon_mib\": 16, \"balloon_stats_s\": 1}", &dst, &st, &err), 0);
	assert_true(dst.balloon);
	assert_int_equal(dst.balloon_size, 16 * MiB);
	dst = (struct vm_config){ 0 };
	assert_int_equal(vm_devices_from_json("{\"balloon\": \"yes\", \"balloon_mib\": 1}", &dst, &st, &err), -1);
	assert_false(dst.balloon);
}

/* Interfaces plugged in while the VM ran (an ID and a slot) and the CD drive travel; a plain interface is
 * still a plain spec. */
static void plugged_interfaces_and_the_cd_travel(void **state)
{
	(void)state;
	struct vm_config src = { .nnets = 2, .net = { "user", "tap=t1,mac=52:54:00:01:02:03" }, .net_id = { NULL, "lan" },
				 .net_slot = { 0, 7 }, .cdrom = true, .cdrom_path = "/iso/a.iso" }, dst = { 0 };
	struct vm_devices_store st;
	round_trip(&src, &dst, &st);
	assert_int_equal(dst.nnets, 2);
	assert_string_equal(dst.net[0], "user");
	assert_null(dst.net_id[0]);
	assert_int_equal(dst.net_slot[0], 0);
	assert_string_equal(dst.net[1], "tap=t1,mac=52:54:00:01:02:03");
	assert_string_equal(dst.net_id[1], "lan");
	assert_int_equal(dst.net_slot[1], 7);
	assert_true(dst.cdrom);
	assert_string_equal(dst.cdrom_path, "/iso/a.iso");
	src.cdrom_path = NULL;                                   /* an empty drive is still a drive */
	dst = (struct vm_config){ 0 };
	round_trip(&src, &dst, &st);
	assert_true(dst.cdrom);
	assert_null(dst.cdrom_path);
}

/* A class the command line gives replaces the source's; the others still come from the source. */
static void the_command_line_replaces_a_class(void **state)
{
	(void)state;
	struct vm_config src = source();
	struct vm_config dst = { .ndisks = 1, .disk = { { .path = "/elsewhere/a" } }, .vsock_cid = 9, .vsock_path = "/x.sock" };
	struct vm_devices_store st;
	round_trip(&src, &dst, &st);
	assert_int_equal(dst.ndisks, 1);
	assert_string_equal(dst.disk[0].path, "/elsewhere/a");
	assert_int_equal(dst.vsock_cid, 9);
	assert_string_equal(dst.vsock_path, "/x.sock");
	assert_int_equal(dst.nnets, 1); /* not given: the source's */
	assert_true(dst.rng);
}

/* --net with a VM the source brings gives each interface's host side: the interface keeps the source's ID,
 * slot and MAC (a tap's default MAC is its name's, and the destination's tap has another name); a MAC the
 * command line names is its own; a count that differs is refused. */
static void interfaces_keep_their_identity(void **state)
{
	(void)state;
	struct vm_config src = { .nnets = 2, .net = { "tap=a0", "tap=t1,mac=52:54:00:01:02:03" }, .net_id = { NULL, "lan" },
				 .net_slot = { 0, 7 } };
	struct vm_config dst = { .nnets = 2, .net = { "tap=b0", "tap=t2" } };
	struct vm_devices_store st;
	struct net_opts a0;
	char want[64];
	vt_err err;
	assert_int_equal(net_opts_parse("tap=a0", &a0, &err), 0);
	snprintf(want, sizeof(want), "tap=b0,mac=%02x:%02x:%02x:%02x:%02x:%02x", a0.mac[0], a0.mac[1], a0.mac[2], a0.mac[3],
		 a0.mac[4], a0.mac[5]);
	round_trip(&src, &dst, &st);
	assert_int_equal(dst.nnets, 2);
	assert_string_equal(dst.net[0], want);
	assert_null(dst.net_id[0]);
	assert_int_equal(dst.net_slot[0], 0);
	assert_string_equal(dst.net[1], "tap=t2,mac=52:54:00:01:02:03");
	assert_string_equal(dst.net_id[1], "lan");
	assert_int_equal(dst.net_slot[1], 7);

	dst = (struct vm_config){ .nnets = 2, .net = { "user", "tap=t2,mac=52:54:00:0a:0b:0c" } };
	round_trip(&src, &dst, &st);
	assert_string_equal(dst.net[1], "tap=t2,mac=52:54:00:0a:0b:0c");

	char *text = vm_devices_to_json(&src);
	dst = (struct vm_config){ .nnets = 1, .net = { "tap=b0" } };
	assert_int_equal(vm_devices_from_json(text, &dst, &st, &err), -1);
	assert_non_null(strstr(err.msg, "the source VM has 2 network interfaces and 1 --net was given"));
	free(text);
}

static void malformed_configurations_are_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"[]", "not json", "{\"rng\": 1}", "{\"disks\": {}}", "{\"disks\": [{\"readonly\": true}]}",
		"{\"disks\": [{\"path\": \"\"}]}", "{\"nets\": [1]}", "{\"vsock\": {\"cid\": 2, \"path\": \"/v\"}}",
		"{\"vsock\": {\"cid\": 3}}", "{\"balloon_mib\": -1}", "{\"disks\": [{\"path\": \"a\", \"format\": \"vmdk\"}]}",
		"{\"disks\": [{\"path\": \"a\", \"layer\": \"../../etc/x\"}]}", "{\"disks\": [{\"path\": \"a\", \"layer\": \"..\"}]}",
		"{\"disks\": [{\"path\": \"a\", \"layer\": \"d/x\"}]}", "{\"disks\": [{\"path\": \"a\", \"layer\": 3}]}",
		"{\"disks\": [{\"path\":\"a\"},{\"path\":\"a\"},{\"path\":\"a\"},{\"path\":\"a\"},{\"path\":\"a\"},"
		"{\"path\":\"a\"},{\"path\":\"a\"},{\"path\":\"a\"},{\"path\":\"a\"}]}",
		"{\"nets\": [{\"id\": \"lan\"}]}", "{\"nets\": [{\"spec\": \"user\", \"pci_slot\": 32}]}",
		"{\"nets\": [{\"spec\": \"user\", \"id\": 5}]}", "{\"cdrom\": {\"path\": \"\"}}", "{\"cdrom\": true}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vm_config dst = { .ncpus = 1 };
		struct vm_devices_store st;
		vt_err err;
		if (vm_devices_from_json(bad[i], &dst, &st, &err) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(err.msg, "the source's configuration"));
	}
}

static void urls_are_checked(void **state)
{
	(void)state;
	char out[128];
	vt_err err;
	assert_int_equal(sock_url_resolve("unix:/run/m.sock", out, sizeof(out), &err), 0);
	assert_string_equal(out, "unix:/run/m.sock");
	assert_int_equal(sock_url_resolve("tcp:10.1.2.3:7000", out, sizeof(out), &err), 0);
	assert_string_equal(out, "tcp:10.1.2.3:7000");
	assert_int_equal(sock_url_resolve("tcp:[::1]:7000", out, sizeof(out), &err), 0);
	assert_string_equal(out, "tcp:[::1]:7000");
	static const char *const bad[] = { "ftp:x", "tcp:1.2.3.4", "tcp:1.2.3.4:0", "tcp:1.2.3.4:70000", "tcp::80", "unix:" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sock_url_resolve(bad[i], out, sizeof(out), &err) != -1)
			fail_msg("accepted: %s", bad[i]);
	assert_int_equal(sock_url_connect("tcp:no.such.host:80", 100, true, &err), -1);
	assert_non_null(strstr(err.msg, "is not an IP address"));
}

/* Listen and connect over a Unix socket and TCP on the loopback; nobody listening is an error naming it. */
static void listen_and_connect(void **state)
{
	(void)state;
	char dir[] = "/tmp/virtus-url-XXXXXX", url[64];
	vt_err err;
	assert_non_null(mkdtemp(dir));
	snprintf(url, sizeof(url), "unix:%s/s", dir);
	int l = sock_url_listen(url, &err);
	assert_true(l >= 0);
	int c = sock_url_connect(url, 1000, true, &err);
	assert_true(c >= 0);
	close(c), close(l);
	unlink(url + 5);
	assert_int_equal(sock_url_connect(url, 1000, true, &err), -1);
	assert_non_null(strstr(err.msg, "cannot connect"));
	rmdir(dir);
	int port = 20000 + (int)(getpid() % 20000);
	snprintf(url, sizeof(url), "tcp:127.0.0.1:%d", port);
	l = sock_url_listen(url, &err);
	assert_true(l >= 0);
	c = sock_url_connect(url, 1000, true, &err);
	assert_true(c >= 0);
	close(c), close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(everything_travels),
		cmocka_unit_test(a_balloon_without_a_target_travels),
		cmocka_unit_test(plugged_interfaces_and_the_cd_travel),
		cmocka_unit_test(the_command_line_replaces_a_class),
		cmocka_unit_test(interfaces_keep_their_identity),
		cmocka_unit_test(malformed_configurations_are_refused),
		cmocka_unit_test(urls_are_checked),
		cmocka_unit_test(listen_and_connect),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
