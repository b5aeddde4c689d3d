/*
 * The frame decoder (common/frame.c): any bytes a peer could send are
 * decoded without reading outside them, the same whole or in pieces through
 * libevent, and every accepted frame packs back to the bytes it came from.
 */
#include <event2/buffer.h>

#include "frame.h"
#include "fuzz.h"

#define MAX_FRAMES 64

struct seen {
	struct frame f;
	size_t off;	/* where its header starts in the input */
};

/* Decode data[1..] whole; returns the frames and how the stream ended. */
static int decode_all(const unsigned char *data, size_t size,
    struct seen *out, size_t *n)
{
	const unsigned char *buf = data + 1;
	size_t avail = size - 1, off = 0;
	uint8_t hdr[FRAME_HDR_LEN];
	const char *why = NULL;
	struct frame f;
	int r;

	*n = 0;
	while ((r = frame_decode(buf + off, avail - off, &f, &why)) == 1) {
		if (frame_size(&f) > avail - off || f.len > FRAME_MAX_PAYLOAD ||
		    f.payload != (const char *)buf + off + FRAME_HDR_LEN)
			fuzz_fail(data, size, "frame at %zu: len %u, %zu bytes left",
			    off, f.len, avail - off);
		frame_pack_hdr(&f, hdr);
		if (memcmp(hdr, buf + off, FRAME_HDR_LEN) != 0)
			fuzz_fail(data, size, "frame at %zu does not pack back", off);
		if (strcmp(frame_type_name(f.type), "?") == 0)
			fuzz_fail(data, size, "accepted type %u has no name", f.type);
		if (*n < MAX_FRAMES) {
			out[*n].f = f;
			out[*n].off = off;
		}
		(*n)++;
		off += frame_size(&f);
	}
	if (r == -1 && (why == NULL || *why == '\0'))
		fuzz_fail(data, size, "refused without a reason");
	if (r == 0 && avail - off >= FRAME_HDR_LEN &&
	    frame_size(&f) <= avail - off)
		fuzz_fail(data, size, "incomplete although %zu bytes are there",
		    avail - off);
	return r;
}

/* The same bytes through an evbuffer, `chunk` bytes at a time. */
static void read_chunked(const unsigned char *data, size_t size, size_t chunk,
    const struct seen *want, size_t nwant, int end)
{
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	size_t fed = 0, n = 0;
	const char *why;
	struct frame f;
	int r = 0;

	if (in == NULL || out == NULL)
		abort();
	while (fed < size - 1) {
		size_t c = size - 1 - fed < chunk ? size - 1 - fed : chunk;

		if (evbuffer_add(in, data + 1 + fed, c) != 0)
			abort();
		fed += c;
		while ((r = frame_read(in, &f, &why)) == 1) {
			const struct frame *w = n < MAX_FRAMES ? &want[n].f : NULL;

			if (n >= nwant)
				fuzz_fail(data, size, "evbuffer read frame %zu of %zu", n,
				    nwant);
			if (w != NULL && (f.type != w->type || f.flags != w->flags ||
			    f.len != w->len || f.seq != w->seq || f.arg != w->arg ||
			    memcmp(f.payload, w->payload, f.len) != 0))
				fuzz_fail(data, size, "frame %zu differs in pieces of %zu",
				    n, chunk);
			/* Writing it again gives the very same bytes. */
			if (frame_write(out, f.type, f.flags, f.seq, f.arg, f.payload,
			    f.len) != 0)
				fuzz_fail(data, size, "frame_write refuses frame %zu", n);
			frame_consume(in, &f);
			n++;
		}
		if (r == -1)
			break;
	}
	if (n != nwant || (r == -1) != (end == -1))
		fuzz_fail(data, size, "pieces of %zu: %zu frames, end %d; whole: %zu, "
		    "end %d", chunk, n, r, nwant, end);
	if (nwant <= MAX_FRAMES) {
		size_t len = evbuffer_get_length(out);
		size_t used = nwant ? want[nwant - 1].off +
		    frame_size(&want[nwant - 1].f) : 0;

		if (len != used || (len > 0 &&
		    memcmp(evbuffer_pullup(out, -1), data + 1, len) != 0))
			fuzz_fail(data, size, "frames written again differ");
	}
	evbuffer_free(in);
	evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static struct seen frames[MAX_FRAMES];
	size_t n;
	int end;

	if (size < 1)
		return 0;
	end = decode_all(data, size, frames, &n);
	/* The first byte picks the piece size: 1 byte up to the whole input. */
	read_chunked(data, size, 1 + data[0] % 48, frames, n, end);
	read_chunked(data, size, size, frames, n, end);
	return 0;
}
