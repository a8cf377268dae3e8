/* nftables for the bridge, through libnftables: the table "ip virtus", one batch per change.
 *
 *   guard        (filter, prerouting -300) packets from the bridge to 127/8 are dropped: route_localnet on
 *                virtus0 (needed for the host's own connections to 127.0.0.1:PORT) must not let a
 *                container reach services bound only to the host's loopback.
 *   prerouting   (nat) per container: DNAT of its -p ports (from other hosts and other containers)
 *   output       (nat) per container: the same for connections the host itself makes (127.0.0.1 included)
 *   postrouting  (nat) masquerade of the subnet's outbound traffic, and of 127/8 sources leaving on virtus0
 *
 * guard and postrouting hold only the table's own rules: they are flushed and refilled in the same batch
 * (atomic, so two runs at once are harmless). Every rule of a container carries the comment "virtus:<id>",
 * which is how cnet_detach and cnet_gc find exactly that container's rules (by their handles). */
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "container/net_int.h"
#include "lib/util.h"

#define RULES_MAX 16384

static void nft_freep(struct nft_ctx **c)
{
	if (*c)
		nft_ctx_free(*c);
}

/* libnftables exit()s the whole process when the kernel has no nf_tables netlink family (mnl.c): ask the
 * kernel first. */
static bool nft_available(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Run one batch; list_out (if not NULL) receives the output text (malloc'd). */
static int nft_run(const char *batch, bool handles, char **list_out, vt_err *err)
{
	if (!nft_available())
		return vt_fail(err, "nftables: this kernel has no nf_tables (load the module: modprobe nf_tables)");
	__attribute__((cleanup(nft_freep))) struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx)
		return vt_fail(err, "nftables: cannot create a context");
	if (handles)
		nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_HANDLE);
	if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0)
		return vt_fail(err, "nftables: cannot buffer output");
	if (nft_run_cmd_from_buffer(ctx, batch) != 0) {
		const char *e = nft_ctx_get_error_buffer(ctx);
		char msg[300];
		snprintf(msg, sizeof(msg), "%s", e ? e : "");
		msg[strcspn(msg, "\n")] = '\0';
		return vt_fail(err, "nftables: %s", msg);
	}
	if (list_out) {
		const char *o = nft_ctx_get_output_buffer(ctx);
		*list_out = strdup(o ? o : "");
		if (!*list_out)
			return vt_fail(err, "out of memory");
	}
	return 0;
}

int cnet_nft_ensure_table(struct in_addr subnet, unsigned prefix, vt_err *err)
{
	char net[INET_ADDRSTRLEN], batch[2048];
	inet_ntop(AF_INET, &subnet, net, sizeof(net));
	snprintf(batch, sizeof(batch),
		 "add table ip virtus\n"
		 "add chain ip virtus guard { type filter hook prerouting priority -300; }\n"
		 "add chain ip virtus prerouting { type nat hook prerouting priority dstnat; }\n"
		 "add chain ip virtus output { type nat hook output priority -100; }\n"
		 "add chain ip virtus postrouting { type nat hook postrouting priority srcnat; }\n"
		 "flush chain ip virtus guard\n"
		 "flush chain ip virtus postrouting\n"
		 "add rule ip virtus guard iifname \"%s\" ip daddr 127.0.0.0/8 drop\n"
		 "add rule ip virtus postrouting ip saddr %s/%u ip daddr != %s/%u masquerade\n"
		 "add rule ip virtus postrouting oifname \"%s\" ip saddr 127.0.0.0/8 masquerade\n",
		 CNET_BRIDGE_NAME, net, prefix, net, prefix, CNET_BRIDGE_NAME);
	return nft_run(batch, false, NULL, err);
}

static void append(char **buf, size_t *len, size_t *cap, const char *line)
{
	size_t n = strlen(line);
	if (*len + n + 1 > *cap) {
		size_t c = MAX(*cap * 2, *len + n + 1024);
		char *p = realloc(*buf, c);
		if (!p)
			abort();
		*buf = p;
		*cap = c;
	}
	memcpy(*buf + *len, line, n + 1);
	*len += n;
}

static int delete_stale_port_rules(const struct cnet_config *c, vt_err *err);

int cnet_nft_add_container(const char *id, struct in_addr addr, struct in_addr gw, const struct cnet_config *c,
			   vt_err *err)
{
	char a[INET_ADDRSTRLEN], g[INET_ADDRSTRLEN], line[512];
	inet_ntop(AF_INET, &addr, a, sizeof(a));
	inet_ntop(AF_INET, &gw, g, sizeof(g));
	cleanup_free char *batch = NULL;
	size_t len = 0, cap = 0;
	append(&batch, &len, &cap, "");
	for (size_t i = 0; i < c->n_ports; i++) {
		const struct cnet_port *p = &c->ports[i];
		char match[80];
		if (p->host_addr[0])
			snprintf(match, sizeof(match), "ip daddr %s", p->host_addr);
		else
			snprintf(match, sizeof(match), "fib daddr type local");
		static const char *const chains[] = { "prerouting", "output" };
		for (size_t k = 0; k < ARRAY_SIZE(chains); k++) {
			snprintf(line, sizeof(line),
				 "add rule ip virtus %s %s %s dport %u dnat to %s:%u comment \"virtus:%s\"\n", chains[k],
				 match, p->udp ? "udp" : "tcp", p->host_port, a, p->ctr_port, id);
			append(&batch, &len, &cap, line);
		}
	}
	if (c->host_loopback) {
		snprintf(line, sizeof(line),
			 "add rule ip virtus prerouting iifname \"%s\" ip saddr %s ip daddr %s dnat to 127.0.0.1 "
			 "comment \"virtus:%s\"\n", CNET_BRIDGE_NAME, a, g, id);
		append(&batch, &len, &cap, line);
	}
	if (len == 0)
		return 0;
	if (delete_stale_port_rules(c, err) < 0)
		return -1;
	return nft_run(batch, false, NULL, err);
}

/* "chain NAME {" opens a chain in the listing. */
static bool chain_line(const char *line, char name[64])
{
	while (*line == ' ' || *line == '\t')
		line++;
	return sscanf(line, "chain %63s {", name) == 1;
}

/* Delete every rule of the table whose listing line holds `needle` and, if not NULL, `also`. */
static int delete_matching(const char *needle, const char *also, vt_err *err)
{
	cleanup_free char *list = NULL;
	vt_err lerr;
	if (nft_run("list table ip virtus", true, &list, &lerr) < 0)
		return 0; /* no table: no rules */
	cleanup_free char *batch = NULL;
	size_t len = 0, cap = 0;
	char chain[64] = "";
	for (char *save = NULL, *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[64];
		if (chain_line(line, name)) {
			snprintf(chain, sizeof(chain), "%s", name);
			continue;
		}
		const char *h = strstr(line, "# handle ");
		if (!chain[0] || !h || !strstr(line, needle) || (also && !strstr(line, also)))
			continue;
		char cmd[160];
		snprintf(cmd, sizeof(cmd), "delete rule ip virtus %s handle %ld\n", chain, strtol(h + 9, NULL, 10));
		append(&batch, &len, &cap, cmd);
	}
	if (len == 0)
		return 0;
	return nft_run(batch, false, NULL, err);
}

int cnet_nft_del_container(const char *id, vt_err *err)
{
	char needle[300];
	snprintf(needle, sizeof(needle), "comment \"virtus:%s\"", id);
	if (!nft_available())
		return 0; /* no nf_tables: no rule can exist */
	return delete_matching(needle, NULL, err);
}

/* A host port that cnet_prepare could bind is held by no live bridged container (each holds its ports):
 * a DNAT rule for it is a leftover of a container whose monitor died (its record may still exist), and
 * would shadow the new container's rule. Binding all addresses proves the port free on every address; one
 * address, on that address and for the all-address rules. */
static int delete_stale_port_rules(const struct cnet_config *c, vt_err *err)
{
	for (size_t i = 0; i < c->n_ports; i++) {
		const struct cnet_port *p = &c->ports[i];
		const char *proto = p->udp ? "udp" : "tcp";
		char needle[128];
		snprintf(needle, sizeof(needle), "%s dport %u dnat to ", proto, p->host_port);
		if (!p->host_addr[0]) {
			if (delete_matching(needle, "comment \"virtus:", err) < 0)
				return -1;
			continue;
		}
		char local[192], addr[224];
		snprintf(local, sizeof(local), "fib daddr type local %s", needle);
		snprintf(addr, sizeof(addr), "ip daddr %s %s", p->host_addr, needle);
		if (delete_matching(local, "comment \"virtus:", err) < 0 ||
		    delete_matching(addr, "comment \"virtus:", err) < 0)
			return -1;
	}
	return 0;
}
