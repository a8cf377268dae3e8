/* Parsing of --network and -p values. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "container/net.h"
#include "lib/util.h"

int cnet_parse_mode(const char *s, enum cnet_mode *out, vt_err *err)
{
	static const struct { const char *name; enum cnet_mode mode; } modes[] = {
		{ "bridge", CNET_BRIDGE }, { "slirp", CNET_SLIRP }, { "slirp4netns", CNET_SLIRP },
		{ "none", CNET_NONE }, { "host", CNET_HOST },
	};
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		if (strcmp(s, modes[i].name) == 0) {
			*out = modes[i].mode;
			return 0;
		}
	}
	return vt_fail(err, "unknown network mode '%s' (bridge, slirp, none or host)", s);
}

static int parse_port_number(const char *s, const char *what, const char *spec, uint16_t *out, vt_err *err)
{
	uint64_t v;
	if (parse_uint(s, 1, 65535, &v) < 0)
		return vt_fail(err, "bad port spec '%s': %s port '%s' is not a number from 1 to 65535", spec, what, s);
	*out = (uint16_t)v;
	return 0;
}

/* Split off "/tcp" or "/udp". */
static int parse_proto(char *body, const char *spec, bool *udp, vt_err *err)
{
	char *slash = strrchr(body, '/');
	*udp = false;
	if (!slash)
		return 0;
	*slash = '\0';
	if (strcmp(slash + 1, "udp") == 0)
		*udp = true;
	else if (strcmp(slash + 1, "tcp") != 0)
		return vt_fail(err, "bad port spec '%s': protocol '%s' is not tcp or udp", spec, slash + 1);
	return 0;
}

/* Split "[ADDR:]HOST:CTR" (ADDR may be "[v6]") into its parts; addr is "" when absent. */
static int split_spec(char *body, const char *spec, char **addr, char **host, char **ctr, vt_err *err)
{
	*addr = "";
	if (body[0] == '[') {
		char *close = strchr(body, ']');
		if (!close || close[1] != ':')
			return vt_fail(err, "bad port spec '%s': an IPv6 address is written [ADDR]:HOSTPORT:CTRPORT", spec);
		*close = '\0';
		*addr = body + 1;
		body = close + 2;
	}
	char *last = strrchr(body, ':');
	if (!last)
		return vt_fail(err, "bad port spec '%s': expected [ADDR:]HOSTPORT:CTRPORT[/tcp|/udp]", spec);
	*last = '\0';
	*ctr = last + 1;
	char *mid = strrchr(body, ':');
	if (mid) {
		if (**addr)
			return vt_fail(err, "bad port spec '%s': too many ':'", spec);
		*mid = '\0';
		*addr = body;
		*host = mid + 1;
	} else {
		*host = body;
	}
	return 0;
}

static int parse_host_addr(const char *a, const char *spec, char out[46], vt_err *err)
{
	unsigned char buf[sizeof(struct in6_addr)];
	if (!*a) {
		out[0] = '\0';
		return 0;
	}
	if (inet_pton(AF_INET, a, buf) != 1 && inet_pton(AF_INET6, a, buf) != 1)
		return vt_fail(err, "bad port spec '%s': '%s' is not an IP address", spec, a);
	if (strlen(a) >= 46)
		return vt_fail(err, "bad port spec '%s': address too long", spec);
	memcpy(out, a, strlen(a) + 1);
	return 0;
}

int cnet_parse_port(const char *spec, struct cnet_port *out, vt_err *err)
{
	char body[128];
	if (strlen(spec) >= sizeof(body))
		return vt_fail(err, "bad port spec '%.40s...': too long", spec);
	snprintf(body, sizeof(body), "%s", spec);
	*out = (struct cnet_port){ 0 };
	char *addr = "", *host = NULL, *ctr = NULL;
	if (parse_proto(body, spec, &out->udp, err) < 0 || split_spec(body, spec, &addr, &host, &ctr, err) < 0 ||
	    parse_host_addr(addr, spec, out->host_addr, err) < 0 ||
	    parse_port_number(host, "host", spec, &out->host_port, err) < 0 ||
	    parse_port_number(ctr, "container", spec, &out->ctr_port, err) < 0)
		return -1;
	return 0;
}
