/*
 * The control-socket request parser (daemon/control_parse.c): any line a
 * local client sends is either a request with every member in range, or an
 * error message that fits its buffer; the same line always parses the same.
 */
#include "control.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct control_req a, b;
	char ea[256], eb[256];
	int ra, rb;

	if (size > CONTROL_MAX_LINE)
		return 0;
	memset(ea, 'x', sizeof(ea));
	ra = control_parse((const char *)data, size, &a, ea, sizeof(ea));
	rb = control_parse((const char *)data, size, &b, eb, sizeof(eb));
	if (ra != rb)
		fuzz_fail(data, size, "parsed twice: %d then %d", ra, rb);
	if (ra == 0) {
		if (a.cmd < CONTROL_STATUS || a.cmd > CONTROL_FIBERS)
			fuzz_fail(data, size, "command %d out of range", (int)a.cmd);
		if (a.action < CONTROL_DEAD_LIST || a.action > CONTROL_DEAD_DROP)
			fuzz_fail(data, size, "action %d out of range", (int)a.action);
		if (a.cmd != b.cmd || a.action != b.action || a.id != b.id ||
		    a.worker != b.worker)
			fuzz_fail(data, size, "the same line parsed two ways");
		if (a.cmd != CONTROL_FIBERS && a.worker != 0)
			fuzz_fail(data, size, "a worker for a command that takes none");
		if (a.cmd != CONTROL_DEAD_LETTERS && (a.id != 0 || a.action != 0))
			fuzz_fail(data, size, "dead-letter members for another command");
	} else if (ra == -1) {
		if (memchr(ea, '\0', sizeof(ea)) == NULL || ea[0] == '\0')
			fuzz_fail(data, size, "error message empty or not terminated");
		if (strcmp(ea, eb) != 0)
			fuzz_fail(data, size, "two error messages for one line");
	} else {
		fuzz_fail(data, size, "control_parse returned %d", ra);
	}
	return 0;
}
