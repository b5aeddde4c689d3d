/* Control characters made visible, so that outside text keeps to one line of a log or a terminal. */
#include "escape.h"

#include <stdio.h>
#include <string.h>

static size_t utf8_len(const unsigned char *s, size_t left);

/*
 * Length of the valid UTF-8 sequence at s (at most `left` bytes), 0 if
 * there is none: no overlong forms, surrogates or code points past U+10FFFF.
 */
static size_t
utf8_len(const unsigned char *s, size_t left)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (n > left)
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;		/* overlong */
	else if (s[0] == 0xed)
		hi = 0x9f;		/* surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90;		/* overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f;		/* past U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

size_t
escape_text(char *out, size_t cap, const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0, i = 0;

	while (i < len) {
		char esc[9];
		size_t n = 1, w;

		if (s[i] >= 0x20 && s[i] < 0x7f) {
			esc[0] = (char)s[i];
			w = 1;
		} else if (s[i] >= 0x80 && (n = utf8_len(s + i, len - i)) > 0 &&
		    !(s[i] == 0xc2 && s[i + 1] < 0xa0)) {
			memcpy(esc, s + i, n);
			w = n;
		} else if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
			esc[0] = '\\';
			esc[1] = s[i] == '\n' ? 'n' : s[i] == '\r' ? 'r' : 't';
			w = 2;
			n = 1;
		} else {
			/* A C1 control is two bytes; a stray byte is one. */
			n = n == 2 ? 2 : 1;
			w = 0;
			for (size_t k = 0; k < n; k++)
				w += (size_t)snprintf(esc + w, sizeof(esc) - w, "\\x%02x",
				    s[i + k]);
		}
		if (o + w >= cap)
			break;
		memcpy(out + o, esc, w);
		o += w;
		i += n;
	}
	out[o] = '\0';
	return o;
}
