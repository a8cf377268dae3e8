/* The wire format between the host (src/isolation/agent.c) and the in-guest agent (guest/agent/), shared by
 * both; described for humans in docs/agent-protocol.md. A stream of frames: an 8-byte header (little-endian
 * payload length, type, process id) and the payload. Control payloads are JSON objects; stdio payloads are
 * raw bytes. Both ends treat what they read as untrusted: a length over AGENT_MAX_PAYLOAD, an unknown type or
 * a malformed payload is a protocol error. */
#ifndef VIRTUS_ISOLATION_AGENT_PROTO_H
#define VIRTUS_ISOLATION_AGENT_PROTO_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_PROTO_VERSION 2          /* 2: ping/pong, flow */
#define AGENT_HDR_SIZE      8
#define AGENT_MAX_PAYLOAD   65536u       /* bytes after the header, any type */
#define AGENT_MAX_PROC_ID   63           /* process ids 0 .. AGENT_MAX_PROCS-1 */

enum agent_msg_type {
	/* both directions */
	AGENT_MSG_HELLO = 1,      /* {"version":N}: the host's first frame, the agent's answer */
	/* host -> guest */
	AGENT_MSG_NET = 2,        /* {"ifname","addr":"a.b.c.d","prefix","gateway":"a.b.c.d"} */
	AGENT_MSG_CREATE = 3,     /* {"spec":{config.json},"stdio":{...}} for proc 0 */
	AGENT_MSG_START = 4,      /* {} */
	AGENT_MSG_EXEC = 5,       /* {"process":{OCI process},"stdio":{...}} */
	AGENT_MSG_STDIN = 6,      /* raw bytes; an empty payload is EOF */
	AGENT_MSG_SIGNAL = 7,     /* {"signal":N} */
	AGENT_MSG_RESIZE = 8,     /* {"rows":R,"cols":C} */
	AGENT_MSG_SHUTDOWN = 9,   /* {} */
	AGENT_MSG_PING = 10,      /* {}: answered by a pong (the host's check that the agent still answers) */
	AGENT_MSG_FLOW = 11,      /* {"stop":bool}: stop (or go on) reading the process's output */
	/* guest -> host */
	AGENT_MSG_CREATED = 16,   /* {"pid":N} */
	AGENT_MSG_STARTED = 17,   /* {"pid":N} */
	AGENT_MSG_STDOUT = 18,    /* raw bytes (tty: all output) */
	AGENT_MSG_STDERR = 19,    /* raw bytes */
	AGENT_MSG_EXIT = 20,      /* {"status":N}: 128+n when killed by signal n */
	AGENT_MSG_ERROR = 21,     /* {"message":"..."}: a request was refused */
	AGENT_MSG_PONG = 22,      /* {}: the answer to a ping */
};

struct agent_hdr {
	uint32_t len;
	uint16_t type;
	uint16_t proc;
};

static inline void agent_hdr_encode(uint8_t out[AGENT_HDR_SIZE], const struct agent_hdr *h)
{
	for (int i = 0; i < 4; i++)
		out[i] = (uint8_t)(h->len >> (8 * i));
	out[4] = (uint8_t)h->type;
	out[5] = (uint8_t)(h->type >> 8);
	out[6] = (uint8_t)h->proc;
	out[7] = (uint8_t)(h->proc >> 8);
}

/* false when the frame can never be valid: oversize payload or process id out of range */
static inline bool agent_hdr_decode(const uint8_t in[AGENT_HDR_SIZE], struct agent_hdr *h)
{
	h->len = (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
	h->type = (uint16_t)(in[4] | in[5] << 8);
	h->proc = (uint16_t)(in[6] | in[7] << 8);
	return h->len <= AGENT_MAX_PAYLOAD && h->proc <= AGENT_MAX_PROC_ID;
}

/* Raw payloads (stdio); every other type carries one JSON object. */
static inline bool agent_msg_is_raw(uint16_t type)
{
	return type == AGENT_MSG_STDIN || type == AGENT_MSG_STDOUT || type == AGENT_MSG_STDERR;
}

/* A control payload as one complete JSON object (nothing after it, no NUL inside), or NULL. */
json_object *agent_parse_object(const uint8_t *p, size_t len);

#endif
