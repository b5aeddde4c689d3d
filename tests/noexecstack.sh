#!/bin/sh
# Fails (and names the file) when a shared object asks for an executable stack:
# such a handler cannot load under MemoryDenyWriteExecute=yes.
# usage: tests/noexecstack.sh FILE.so...
status=0
for f in "$@"; do
	hdr=$(readelf -lW "$f" 2>/dev/null) || { echo "$f: not an ELF file" >&2; status=1; continue; }
	stack=$(printf '%s\n' "$hdr" | grep GNU_STACK)
	if [ -z "$stack" ] || printf '%s\n' "$stack" | grep -q 'RWE'; then
		echo "$f: executable stack (link handlers with -Wl,-z,noexecstack)" >&2
		status=1
	fi
done
exit $status
