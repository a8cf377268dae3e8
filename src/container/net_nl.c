/* rtnetlink over a plain NETLINK_ROUTE socket: the few link, address and route requests containers need.
 * Each request is sent with NLM_F_ACK and the kernel's answer read back, so every failure has its errno.
 * A netlink socket stays bound to the network namespace it was made in, which is how a container's
 * namespace is configured from the host: make the socket inside it, then return. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "container/net_int.h"
#include "lib/util.h"

#define NL_BUF 8192
#define OPER_UP 6 /* IF_OPER_UP of RFC 2863 (linux/if.h, which clashes with net/if.h) */

struct nl_req {
	struct nlmsghdr *h;
	size_t cap;
	_Alignas(NLMSG_ALIGNTO) char buf[1024];
};

static void req_init(struct nl_req *r, uint16_t type, uint16_t flags, const void *body, size_t body_len)
{
	memset(r->buf, 0, sizeof(r->buf));
	r->cap = sizeof(r->buf);
	r->h = (struct nlmsghdr *)r->buf;
	r->h->nlmsg_len = NLMSG_LENGTH(body_len);
	r->h->nlmsg_type = type;
	/* A dump ends with NLMSG_DONE; an ack after it would be read as the next request's answer. */
	/* (NLM_F_DUMP's bits mean NLM_F_EXCL/REPLACE on a NEW request: only a GET is a dump.) */
	bool dump = (type % 4) == 2 && (flags & NLM_F_DUMP) == NLM_F_DUMP; /* RTM_GET* are 2 mod 4 */
	r->h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags | (dump ? 0 : NLM_F_ACK));
	memcpy(NLMSG_DATA(r->h), body, body_len);
}

static struct rtattr *attr_put(struct nl_req *r, uint16_t type, const void *data, size_t len)
{
	size_t at = NLMSG_ALIGN(r->h->nlmsg_len);
	if (at + RTA_SPACE(len) > r->cap)
		return NULL; /* requests are small and fixed: cannot happen */
	struct rtattr *a = (struct rtattr *)(r->buf + at);
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h->nlmsg_len = (uint32_t)(at + RTA_SPACE(len));
	return a;
}

static void attr_str(struct nl_req *r, uint16_t type, const char *s)
{
	attr_put(r, type, s, strlen(s) + 1);
}

static struct rtattr *nest_begin(struct nl_req *r, uint16_t type)
{
	return attr_put(r, type, NULL, 0);
}

static void nest_end(struct nl_req *r, struct rtattr *nest)
{
	nest->rta_len = (unsigned short)((char *)r->h + r->h->nlmsg_len - (char *)nest);
}

int nl_open(vt_err *err)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return vt_fail_errno(err, errno, "netlink socket");
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return vt_fail_errno(err, e, "netlink bind");
	}
	return fd;
}

int netns_enter_pid(pid_t pid, int *home, vt_err *err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	cleanup_close int target = open(path, O_RDONLY | O_CLOEXEC);
	if (target < 0)
		return vt_fail_errno(err, errno, "opening %s", path);
	*home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*home < 0)
		return vt_fail_errno(err, errno, "opening /proc/thread-self/ns/net");
	if (setns(target, CLONE_NEWNET) < 0) {
		close(*home);
		return vt_fail_errno(err, errno, "entering the network namespace of pid %d", (int)pid);
	}
	return 0;
}

void netns_return(int home)
{
	if (setns(home, CLONE_NEWNET) < 0)
		abort(); /* this thread would keep working in the container's namespace: never go on */
	close(home);
}

int nl_open_in_pid_netns(pid_t pid, vt_err *err)
{
	int home;
	if (netns_enter_pid(pid, &home, err) < 0)
		return -1;
	int fd = nl_open(err);
	netns_return(home);
	return fd;
}

/* Send a request and wait for its ack; calls on_msg for every non-ack answer (a GET). */
static const char *ip_str(struct in_addr a, char buf[INET_ADDRSTRLEN])
{
	return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

int nl_exchange(int nl, const struct nlmsghdr *msg, void (*on_msg)(struct nlmsghdr *, void *), void *opaque)
{
	static const struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	if (sendto(nl, msg, msg->nlmsg_len, 0, (const struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	_Alignas(NLMSG_ALIGNTO) char buf[NL_BUF];
	for (;;) {
		ssize_t n = recv(nl, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				return e->error; /* 0 = the ack */
			}
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (on_msg)
				on_msg(h, opaque);
		}
	}
}

static int nl_talk(int nl, struct nl_req *r, void (*on_msg)(struct nlmsghdr *, void *), void *opaque)
{
	return nl_exchange(nl, r->h, on_msg, opaque);
}

/* A GET dump: every answer to on_msg. */
static int nl_dump(int nl, uint16_t type, const void *body, size_t len, void (*on_msg)(struct nlmsghdr *, void *),
		   void *opaque, const char *what, vt_err *err)
{
	struct nl_req r;
	req_init(&r, type, NLM_F_DUMP, body, len);
	int rc = nl_talk(nl, &r, on_msg, opaque);
	return rc < 0 ? vt_fail_errno(err, -rc, "listing %s", what) : 0;
}

static void on_link(struct nlmsghdr *h, void *opaque)
{
	if (h->nlmsg_type == RTM_NEWLINK)
		*(int *)opaque = ((struct ifinfomsg *)NLMSG_DATA(h))->ifi_index;
}

int nl_link_index(int nl, const char *name, vt_err *err)
{
	struct nl_req r;
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	req_init(&r, RTM_GETLINK, 0, &ifi, sizeof(ifi));
	attr_str(&r, IFLA_IFNAME, name);
	int index = 0;
	int rc = nl_talk(nl, &r, on_link, &index);
	if (rc == -ENODEV)
		return 0;
	if (rc < 0)
		return vt_fail_errno(err, -rc, "looking up link %s", name);
	return index;
}

struct oper_query {
	int index;
	uint8_t oper;
};

static void on_link_oper(struct nlmsghdr *h, void *opaque)
{
	struct oper_query *q = opaque;
	if (h->nlmsg_type != RTM_NEWLINK)
		return;
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	q->index = ifi->ifi_index;
	int len = (int)IFLA_PAYLOAD(h);
	for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_OPERSTATE && RTA_PAYLOAD(a) >= 1)
			q->oper = *(const uint8_t *)RTA_DATA(a);
	}
}

int nl_link_wait_running(int nl, const char *name, unsigned timeout_ms, vt_err *err)
{
	for (unsigned waited = 0;; waited += 2) {
		struct nl_req r;
		struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
		req_init(&r, RTM_GETLINK, 0, &ifi, sizeof(ifi));
		attr_str(&r, IFLA_IFNAME, name);
		struct oper_query q = { 0 };
		int rc = nl_talk(nl, &r, on_link_oper, &q);
		if (rc < 0)
			return vt_fail_errno(err, -rc, "looking up link %s", name);
		if (q.oper == OPER_UP)
			return 0;
		if (waited >= timeout_ms)
			return vt_fail(err, "link %s is not up after %u ms", name, timeout_ms);
		usleep(2000);
	}
}

int nl_link_up(int nl, const char *name, vt_err *err)
{
	struct nl_req r;
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
	req_init(&r, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	attr_str(&r, IFLA_IFNAME, name);
	int rc = nl_talk(nl, &r, NULL, NULL);
	if (rc < 0)
		return vt_fail_errno(err, -rc, "bringing link %s up", name);
	return 0;
}

int nl_link_set_master(int nl, const char *name, int master_index, vt_err *err)
{
	struct nl_req r;
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	req_init(&r, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	attr_str(&r, IFLA_IFNAME, name);
	uint32_t master = (uint32_t)master_index;
	attr_put(&r, IFLA_MASTER, &master, sizeof(master));
	int rc = nl_talk(nl, &r, NULL, NULL);
	if (rc < 0)
		return vt_fail_errno(err, -rc, "attaching link %s to its bridge", name);
	return 0;
}

int nl_bridge_create(int nl, const char *name, vt_err *err)
{
	struct nl_req r;
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	attr_str(&r, IFLA_IFNAME, name);
	struct rtattr *info = nest_begin(&r, IFLA_LINKINFO);
	attr_str(&r, IFLA_INFO_KIND, "bridge");
	nest_end(&r, info);
	int rc = nl_talk(nl, &r, NULL, NULL);
	if (rc < 0 && rc != -EEXIST) /* another run made it first */
		return vt_fail_errno(err, -rc, "creating bridge %s", name);
	return 0;
}

int nl_veth_create(int nl, const char *host_name, int master_index, const char *peer_name, int netns_fd,
		   vt_err *err)
{
	struct nl_req r;
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	attr_str(&r, IFLA_IFNAME, host_name);
	uint32_t master = (uint32_t)master_index;
	attr_put(&r, IFLA_MASTER, &master, sizeof(master));
	struct rtattr *info = nest_begin(&r, IFLA_LINKINFO);
	attr_str(&r, IFLA_INFO_KIND, "veth");
	struct rtattr *data = nest_begin(&r, IFLA_INFO_DATA);
	struct rtattr *peer = nest_begin(&r, VETH_INFO_PEER);
	/* The peer's attributes follow its own ifinfomsg. */
	struct ifinfomsg peer_ifi = { .ifi_family = AF_UNSPEC };
	size_t at = NLMSG_ALIGN(r.h->nlmsg_len);
	memcpy(r.buf + at, &peer_ifi, sizeof(peer_ifi));
	r.h->nlmsg_len = (uint32_t)(at + NLMSG_ALIGN(sizeof(peer_ifi)));
	attr_str(&r, IFLA_IFNAME, peer_name);
	uint32_t fd = (uint32_t)netns_fd;
	attr_put(&r, IFLA_NET_NS_FD, &fd, sizeof(fd));
	nest_end(&r, peer);
	nest_end(&r, data);
	nest_end(&r, info);
	int rc = nl_talk(nl, &r, NULL, NULL);
	if (rc < 0)
		return vt_fail_errno(err, -rc, "creating veth pair %s/%s", host_name, peer_name);
	return 0;
}

int nl_link_del(int nl, const char *name, vt_err *err)
{
	struct nl_req r;
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	req_init(&r, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	attr_str(&r, IFLA_IFNAME, name);
	int rc = nl_talk(nl, &r, NULL, NULL);
	if (rc < 0 && rc != -ENODEV)
		return vt_fail_errno(err, -rc, "deleting link %s", name);
	return 0;
}

int nl_addr_add(int nl, int ifindex, struct in_addr addr, unsigned prefix, vt_err *err)
{
	struct nl_req r;
	struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_prefixlen = (unsigned char)prefix,
				 .ifa_index = (unsigned)ifindex };
	req_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, &ifa, sizeof(ifa));
	attr_put(&r, IFA_LOCAL, &addr, sizeof(addr));
	attr_put(&r, IFA_ADDRESS, &addr, sizeof(addr));
	int rc = nl_talk(nl, &r, NULL, NULL);
	if (rc < 0)
	{
		char b[INET_ADDRSTRLEN];
		return vt_fail_errno(err, -rc, "adding address %s/%u", ip_str(addr, b), prefix);
	}
	return 0;
}

struct addr_query {
	int ifindex;
	bool found;
	struct in_addr addr;
	unsigned prefix;
};

static void on_addr(struct nlmsghdr *h, void *opaque)
{
	struct addr_query *q = opaque;
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	if (h->nlmsg_type != RTM_NEWADDR || q->found || (int)ifa->ifa_index != q->ifindex)
		return;
	int len = (int)IFA_PAYLOAD(h);
	for (struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFA_LOCAL && RTA_PAYLOAD(a) == sizeof(struct in_addr)) {
			memcpy(&q->addr, RTA_DATA(a), sizeof(q->addr));
			q->prefix = ifa->ifa_prefixlen;
			q->found = true;
		}
	}
}

int nl_addr_get(int nl, int ifindex, struct in_addr *addr, unsigned *prefix, vt_err *err)
{
	struct ifaddrmsg ifa = { .ifa_family = AF_INET };
	struct addr_query q = { .ifindex = ifindex };
	if (nl_dump(nl, RTM_GETADDR, &ifa, sizeof(ifa), on_addr, &q, "addresses", err) < 0)
		return -1;
	if (!q.found)
		return 1;
	*addr = q.addr;
	*prefix = q.prefix;
	return 0;
}

int nl_route_default(int nl, struct in_addr gw, vt_err *err)
{
	struct nl_req r;
	struct rtmsg rt = { .rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT,
			    .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST };
	req_init(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rt, sizeof(rt));
	attr_put(&r, RTA_GATEWAY, &gw, sizeof(gw));
	int rc = nl_talk(nl, &r, NULL, NULL);
	if (rc < 0)
	{
		char b[INET_ADDRSTRLEN];
		return vt_fail_errno(err, -rc, "adding the default route via %s", ip_str(gw, b));
	}
	return 0;
}

/* ---- What a network namespace holds (VM isolation through the OCI runtime: net_vmns.c) ---- */

struct ether_links {
	struct nl_link_info link[16];
	unsigned n;
};

static void on_ether_link(struct nlmsghdr *h, void *opaque)
{
	struct ether_links *q = opaque;
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	if (h->nlmsg_type != RTM_NEWLINK || (ifi->ifi_flags & IFF_LOOPBACK) || q->n == ARRAY_SIZE(q->link))
		return;
	struct nl_link_info l = { .index = ifi->ifi_index };
	bool ether = false;
	int len = (int)IFLA_PAYLOAD(h);
	for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == sizeof(l.mac)) {
			memcpy(l.mac, RTA_DATA(a), sizeof(l.mac));
			ether = true;
		} else if (a->rta_type == IFLA_IFNAME) {
			snprintf(l.name, sizeof(l.name), "%.*s", (int)RTA_PAYLOAD(a), (const char *)RTA_DATA(a));
		}
	}
	if (ether && ifi->ifi_type == 1 /* ARPHRD_ETHER */)
		q->link[q->n++] = l;
}

int nl_link_find_ipv4(int nl, struct nl_link_info *out, struct in_addr *addr, unsigned *prefix, vt_err *err)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct ether_links q = { .n = 0 };
	if (nl_dump(nl, RTM_GETLINK, &ifi, sizeof(ifi), on_ether_link, &q, "links", err) < 0)
		return -1;
	for (unsigned i = 0; i < q.n; i++) {
		int rc = nl_addr_get(nl, q.link[i].index, addr, prefix, err);
		if (rc <= 0) {
			*out = q.link[i];
			return rc;
		}
	}
	return 1;
}

struct gw_query {
	int ifindex;
	bool found;
	struct in_addr gw;
};

static void on_route(struct nlmsghdr *h, void *opaque)
{
	struct gw_query *q = opaque;
	const struct rtmsg *rt = NLMSG_DATA(h);
	if (h->nlmsg_type != RTM_NEWROUTE || q->found || rt->rtm_dst_len != 0 || rt->rtm_table != RT_TABLE_MAIN)
		return;
	struct in_addr gw = { 0 };
	int oif = q->ifindex, len = (int)RTM_PAYLOAD(h);
	for (struct rtattr *a = RTM_RTA(rt); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) == sizeof(gw))
			memcpy(&gw, RTA_DATA(a), sizeof(gw));
		else if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) == sizeof(int))
			memcpy(&oif, RTA_DATA(a), sizeof(oif));
	}
	if (gw.s_addr && oif == q->ifindex) {
		q->gw = gw;
		q->found = true;
	}
}

int nl_route_default_get(int nl, int ifindex, struct in_addr *gw, vt_err *err)
{
	struct rtmsg rt = { .rtm_family = AF_INET };
	struct gw_query q = { .ifindex = ifindex };
	if (nl_dump(nl, RTM_GETROUTE, &rt, sizeof(rt), on_route, &q, "routes", err) < 0)
		return -1;
	gw->s_addr = q.found ? q.gw.s_addr : 0;
	return q.found ? 0 : 1;
}

#define TC_INGRESS_HANDLE 0xffff0000u   /* ffff: */

int nl_tc_ingress(int nl, int ifindex, bool add, vt_err *err)
{
	struct nl_req r;
	struct tcmsg tc = { .tcm_family = AF_UNSPEC, .tcm_ifindex = ifindex, .tcm_handle = TC_INGRESS_HANDLE,
			    .tcm_parent = TC_H_INGRESS };
	req_init(&r, add ? RTM_NEWQDISC : RTM_DELQDISC, add ? NLM_F_CREATE | NLM_F_EXCL : 0, &tc, sizeof(tc));
	attr_str(&r, TCA_KIND, "ingress");
	int rc = nl_talk(nl, &r, NULL, NULL);
	if (rc < 0 && (add || (rc != -ENOENT && rc != -EINVAL && rc != -ENODEV)))
		return vt_fail_errno(err, -rc, "%s the ingress qdisc of link %d", add ? "adding" : "deleting", ifindex);
	return 0;
}

int nl_tc_redirect(int nl, int from_index, int to_index, vt_err *err)
{
	struct nl_req r;
	struct tcmsg tc = { .tcm_family = AF_UNSPEC, .tcm_ifindex = from_index, .tcm_parent = TC_INGRESS_HANDLE,
			    .tcm_info = TC_H_MAKE(1u << 16, htons(ETH_P_ALL)) };
	req_init(&r, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, &tc, sizeof(tc));
	attr_str(&r, TCA_KIND, "u32");
	struct rtattr *opts = nest_begin(&r, TCA_OPTIONS);
	/* one key that matches every frame: mask 0 at offset 0 */
	struct {
		struct tc_u32_sel sel;
		struct tc_u32_key key;
	} sel = { .sel = { .flags = TC_U32_TERMINAL, .nkeys = 1 } };
	attr_put(&r, TCA_U32_SEL, &sel, sizeof(sel));
	struct rtattr *acts = nest_begin(&r, TCA_U32_ACT);
	struct rtattr *act = nest_begin(&r, 1);
	attr_str(&r, TCA_ACT_KIND, "mirred");
	struct rtattr *aopts = nest_begin(&r, TCA_ACT_OPTIONS);
	struct tc_mirred m = { .action = TC_ACT_STOLEN, .eaction = TCA_EGRESS_REDIR, .ifindex = (uint32_t)to_index };
	attr_put(&r, TCA_MIRRED_PARMS, &m, sizeof(m));
	nest_end(&r, aopts);
	nest_end(&r, act);
	nest_end(&r, acts);
	nest_end(&r, opts);
	int rc = nl_talk(nl, &r, NULL, NULL);
	if (rc < 0)
		return vt_fail_errno(err, -rc, "redirecting link %d to link %d (tc u32, mirred)", from_index, to_index);
	return 0;
}
