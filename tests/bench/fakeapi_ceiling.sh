#!/bin/sh
# Ceiling of the fake Bot API: sendMessage requests/s with 50 keep-alive clients.
# usage: tests/bench/fakeapi_ceiling.sh BUILD_DIR [CPU]   (CPU: pin the server with taskset)
set -eu
build=${1:?usage: $0 BUILD_DIR [CPU]}
cpu=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
log=$(mktemp)
trap 'rm -f "$out" "$log"' EXIT

if [ -n "$cpu" ]; then
	taskset -c "$cpu" "$build/tgrun-fakeapi" --port 0 >"$out" 2>"$log" &
else
	"$build/tgrun-fakeapi" --port 0 >"$out" 2>"$log" &
fi
pid=$!
i=0
while [ ! -s "$out" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
port=$(head -n 1 "$out")
if [ -z "$port" ]; then
	echo "fakeapi did not start" >&2
	kill "$pid" 2>/dev/null || true
	exit 1
fi
# the token stays inside the Lua script (environment); wrk prints no URLs with -s
# with the server pinned, keep wrk off its CPU so the two do not share a core
wrk_cpu=""
if [ -n "$cpu" ] && [ "$(nproc)" -gt 1 ]; then
	wrk_cpu=$(( (cpu + 1) % $(nproc) ))
fi
cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
res=$(${wrk_cpu:+taskset -c "$wrk_cpu"} wrk -t1 -c50 -d5s -s "$here/sendmessage.lua" \
	"http://127.0.0.1:$port" 2>&1) || true
cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
kill -TERM "$pid"
wait "$pid" || true
echo "$res" | grep -E "Requests/sec|Latency|requests in|Non-2xx|Socket errors" || true
rps=$(echo "$res" | awk '/Requests\/sec/ {print $2}')
hz=$(getconf CLK_TCK)
reqs=$(echo "$res" | awk '/requests in/ {print $1}')
echo "server CPU: $(( (cpu1 - cpu0) * 100 / (5 * hz) ))% of one core," \
	"$(( (cpu1 - cpu0) * 1000000 / hz / ${reqs:-1} )) us CPU per request"
echo "fakeapi sendMessage ceiling: ${rps:-0} requests/s${cpu:+ (server pinned to CPU $cpu)}"
