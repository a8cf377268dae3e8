#include "net/net_opts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

static int parse_port(const char *s, size_t len, uint16_t *port)
{
	char buf[8];
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = 0;
	char *end;
	errno = 0;
	unsigned long v = strtoul(buf, &end, 10);
	if (errno || *end || v == 0 || v > 65535 || buf[0] < '0' || buf[0] > '9')
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int parse_addr(const char *s, size_t len, const char *dflt, struct in_addr *a)
{
	char buf[INET_ADDRSTRLEN];
	if (len == 0)
		return inet_pton(AF_INET, dflt, a) == 1 ? 0 : -1;
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = 0;
	return inet_pton(AF_INET, buf, a) == 1 ? 0 : -1;
}

/* "[ADDR:]PORT" (host side, the colon optional) or "[ADDR]:PORT" (guest side, the colon required). */
static int parse_endpoint(const char *s, size_t len, bool colon_required, const char *dflt,
			  struct in_addr *a, uint16_t *port)
{
	const char *colon = memrchr(s, ':', len);
	if (!colon && colon_required)
		return -1;
	size_t alen = colon ? (size_t)(colon - s) : 0;
	const char *p = colon ? colon + 1 : s;
	if (parse_addr(s, alen, dflt, a) < 0)
		return -1;
	return parse_port(p, len - (size_t)(p - s), port);
}

int net_hostfwd_parse(const char *s, struct net_hostfwd *f, vt_err *err)
{
	memset(f, 0, sizeof(*f));
	const char *rest;
	if (!strncmp(s, "tcp:", 4))
		rest = s + 4;
	else if (!strncmp(s, "udp:", 4))
		rest = s + 4, f->udp = true;
	else
		return vt_fail(err, "hostfwd '%s': must start with tcp: or udp:", s);
	const char *dash = strchr(rest, '-');
	if (!dash)
		return vt_fail(err, "hostfwd '%s': expected HOSTPORT-:GUESTPORT (e.g. tcp:8080-:80)", s);
	if (parse_endpoint(rest, (size_t)(dash - rest), false, "127.0.0.1", &f->host_addr, &f->host_port) < 0)
		return vt_fail(err, "hostfwd '%s': bad host side '%.*s' (want [ADDR:]PORT, port 1-65535)", s,
			       (int)(dash - rest), rest);
	if (parse_endpoint(dash + 1, strlen(dash + 1), true, NET_GUEST_ADDR_DEFAULT, &f->guest_addr, &f->guest_port) < 0)
		return vt_fail(err, "hostfwd '%s': bad guest side '%s' (want [ADDR]:PORT, port 1-65535)", s, dash + 1);
	return 0;
}

int net_mac_parse(const char *s, uint8_t mac[6], vt_err *err)
{
	unsigned b[6];
	char tail;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6 ||
	    strlen(s) != 17)
		return vt_fail(err, "mac '%s': want six hex bytes like 52:54:00:12:34:56", s);
	if (b[0] & 1)
		return vt_fail(err, "mac '%s': a multicast address (low bit of the first byte set)", s);
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

void net_mac_from_name(const char *name, uint8_t mac[6])
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	mac[0] = 0x52, mac[1] = 0x54, mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16), mac[4] = (uint8_t)(h >> 8), mac[5] = (uint8_t)h;
}

static int parse_item(const char *item, struct net_opts *o, vt_err *err)
{
	if (!strncmp(item, "hostfwd=", 8)) {
		if (o->kind == NET_TAP)
			return vt_fail(err, "hostfwd= is for --net user: on a tap the host reaches the guest directly");
		if (o->nfwd == NET_MAX_HOSTFWD)
			return vt_fail(err, "more than %d hostfwd= forwards", NET_MAX_HOSTFWD);
		return net_hostfwd_parse(item + 8, &o->fwd[o->nfwd++], err);
	}
	if (!strncmp(item, "mac=", 4)) {
		o->mac_set = true;
		return net_mac_parse(item + 4, o->mac, err);
	}
	if (!strncmp(item, "host-loopback=", 14) && o->kind == NET_USER) {
		if (strcmp(item + 14, "on") && strcmp(item + 14, "off"))
			return vt_fail(err, "host-loopback wants on or off, got '%s'", item + 14);
		o->host_loopback = !strcmp(item + 14, "on");
		return 0;
	}
	return vt_fail(err, "unknown option '%s' (known: %s)", item,
		       o->kind == NET_TAP ? "mac=" : "hostfwd=, mac=, host-loopback=");
}

static int parse_tap_name(const char *name, struct net_opts *o, vt_err *err)
{
	if (!*name)
		return vt_fail(err, "tap= needs an interface name (e.g. tap=tap0)");
	if (strlen(name) >= IFNAMSIZ)
		return vt_fail(err, "tap name '%s' is longer than %d characters", name, IFNAMSIZ - 1);
	if (strchr(name, '/') || strchr(name, ':') || strchr(name, ' ') || !strcmp(name, ".") || !strcmp(name, ".."))
		return vt_fail(err, "tap name '%s' is not a valid interface name", name);
	o->kind = NET_TAP;
	strcpy(o->ifname, name);
	return 0;
}

int net_opts_parse(const char *spec, struct net_opts *o, vt_err *err)
{
	memset(o, 0, sizeof(*o));
	cleanup_free char *copy = strdup(spec);
	if (!copy)
		return vt_fail_errno(err, ENOMEM, "--net");
	char *save = NULL;
	char *kind = strtok_r(copy, ",", &save);
	if (kind && !strncmp(kind, "tap=", 4)) {
		if (parse_tap_name(kind + 4, o, err) < 0)
			return vt_err_prefix(err, "--net '%s'", spec);
	} else if (kind && !strcmp(kind, "user")) {
		o->kind = NET_USER;
	} else {
		return vt_fail(err, "--net '%s': the backend must be 'user' or 'tap=NAME' (e.g. --net user,hostfwd=tcp:8080-:80)",
			       spec);
	}
	for (char *item; (item = strtok_r(NULL, ",", &save));)
		if (parse_item(item, o, err) < 0)
			return vt_err_prefix(err, "--net");
	net_opts_default_mac(o, 0);
	return 0;
}

void net_opts_default_mac(struct net_opts *o, unsigned index)
{
	if (o->mac_set)
		return;
	if (o->kind == NET_TAP) {
		net_mac_from_name(o->ifname, o->mac);
		return;
	}
	static const uint8_t first[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	memcpy(o->mac, first, 6);
	o->mac[5] = (uint8_t)(o->mac[5] + index);
}
