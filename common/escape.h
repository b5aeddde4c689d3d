/* Control characters made visible, so that outside text keeps to one line of a log or a terminal. */
#ifndef TGRUN_ESCAPE_H
#define TGRUN_ESCAPE_H

#include <stddef.h>

/*
 * Copy `len` bytes of `in` into `out` (capacity `cap` > 0, always
 * NUL-terminated), writing bytes below 0x20 and 0x7f as \n, \r, \t or \xHH.
 * Valid UTF-8 stays as it is, except the C1 controls U+0080..U+009F; bytes
 * that are not UTF-8 are written as \xHH too. A backslash stays as it is.
 * An escape or a character that does not fit whole is left out with all
 * that follows. Returns the bytes written, without the NUL.
 */
size_t escape_text(char *out, size_t cap, const char *in, size_t len);

#endif
