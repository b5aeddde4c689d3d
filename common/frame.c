/* The master <-> worker wire protocol: fixed header, length-checked frames. */
#include "frame.h"

#include <string.h>

#include <event2/buffer.h>

static int type_known(uint8_t t)
{
	switch (t) {
	case FRAME_CONFIG: case FRAME_UPDATE: case FRAME_CANCEL:
	case FRAME_DRAIN: case FRAME_PING: case FRAME_DUMP: case FRAME_READY: case FRAME_DONE:
	case FRAME_PONG: case FRAME_FAIL: case FRAME_STATS:
		return 1;
	}
	return 0;
}

const char *frame_type_name(int type)
{
	switch (type) {
	case FRAME_CONFIG: return "CONFIG";
	case FRAME_UPDATE: return "UPDATE";
	case FRAME_CANCEL: return "CANCEL";
	case FRAME_DRAIN: return "DRAIN";
	case FRAME_PING: return "PING";
	case FRAME_DUMP: return "DUMP";
	case FRAME_READY: return "READY";
	case FRAME_DONE: return "DONE";
	case FRAME_PONG: return "PONG";
	case FRAME_FAIL: return "FAIL";
	case FRAME_STATS: return "STATS";
	}
	return "?";
}

void frame_pack_hdr(const struct frame *f, uint8_t out[FRAME_HDR_LEN])
{
	uint32_t reserved = 0;

	out[0] = FRAME_VERSION;
	out[1] = f->type;
	memcpy(out + 2, &f->flags, 2);
	memcpy(out + 4, &f->len, 4);
	memcpy(out + 8, &f->seq, 8);
	memcpy(out + 16, &f->arg, 4);
	memcpy(out + 20, &reserved, 4);
}

int frame_decode(const uint8_t *buf, size_t avail, struct frame *f,
    const char **why)
{
	uint32_t reserved;

	if (avail < FRAME_HDR_LEN)
		return 0;
	if (buf[0] != FRAME_VERSION) {
		*why = "unsupported protocol version";
		return -1;
	}
	if (!type_known(buf[1])) {
		*why = "unknown frame type";
		return -1;
	}
	memset(f, 0, sizeof(*f));
	f->type = buf[1];
	memcpy(&f->flags, buf + 2, 2);
	memcpy(&f->len, buf + 4, 4);
	memcpy(&f->seq, buf + 8, 8);
	memcpy(&f->arg, buf + 16, 4);
	memcpy(&reserved, buf + 20, 4);
	if (reserved != 0) {
		*why = "reserved header field not zero";
		return -1;
	}
	if (f->len > FRAME_MAX_PAYLOAD) {
		*why = "payload too long";
		return -1;
	}
	if (avail - FRAME_HDR_LEN < f->len)
		return 0;
	f->payload = (const char *)buf + FRAME_HDR_LEN;
	return 1;
}

int frame_write(struct evbuffer *out, uint8_t type, uint16_t flags,
    uint64_t seq, uint32_t arg, const void *payload, size_t len)
{
	struct frame f = { .type = type, .flags = flags, .seq = seq,
	    .arg = arg, .len = (uint32_t)len };
	uint8_t hdr[FRAME_HDR_LEN];

	if (len > FRAME_MAX_PAYLOAD)
		return -1;
	frame_pack_hdr(&f, hdr);
	if (evbuffer_add(out, hdr, sizeof(hdr)) != 0)
		return -1;
	if (len > 0 && evbuffer_add(out, payload, len) != 0)
		return -1;
	return 0;
}

int frame_read(struct evbuffer *in, struct frame *f, const char **why)
{
	size_t avail = evbuffer_get_length(in);
	uint8_t hdr[FRAME_HDR_LEN];
	const uint8_t *all;
	int r;

	if (avail < FRAME_HDR_LEN)
		return 0;
	if (evbuffer_copyout(in, hdr, sizeof(hdr)) != (ev_ssize_t)sizeof(hdr))
		return 0;
	/* Validate the header before pulling up (and trusting) any length. */
	r = frame_decode(hdr, sizeof(hdr), f, why);
	if (r < 0)
		return -1;
	if (avail < frame_size(f))
		return 0;
	all = evbuffer_pullup(in, (ev_ssize_t)frame_size(f));
	if (all == NULL) {
		*why = "out of memory";
		return -1;
	}
	return frame_decode(all, frame_size(f), f, why);
}

void frame_consume(struct evbuffer *in, const struct frame *f)
{
	evbuffer_drain(in, frame_size(f));
}
