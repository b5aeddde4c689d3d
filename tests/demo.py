#!/usr/bin/env python3
"""make demo: the fake Bot API with 20,000 updates, tgrund with the echo handler, live progress."""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))

from daemon import write_config  # noqa: E402
from fakeapi import FakeApi  # noqa: E402
from procs import TEST_TOKEN  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default="build")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    tmp = tempfile.mkdtemp(prefix="tgrun-demo-")
    print("tgrun demo: %d messages in 500 chats from 2,000 users, %d workers, "
          "echo handler" % (a.count, a.workers))
    print("files in %s" % tmp)
    # Text messages only: the echo handler answers those, as replies the
    # fake server matches to their messages.
    api = FakeApi(build, tmp, args=("--count", str(a.count), "--chats", "500",
                                    "--users", "2000", "--seed", "1",
                                    "--mix", "message=1"))
    token = os.path.join(tmp, "token")
    with open(token, "w") as f:
        f.write(TEST_TOKEN + "\n")
    os.chmod(token, 0o600)
    conf = os.path.join(tmp, "demo.conf")
    write_config(conf, {
        "bot": {"name": "demo", "token_file": token, "api_url": api.url},
        "workers": {"count": a.workers,
                    "handler": os.path.join(build, "handlers", "echo.so")},
        "journal": {"path": os.path.join(tmp, "demo.journal.db")},
    })
    log = open(os.path.join(tmp, "tgrund.log"), "wb")
    try:
        d = subprocess.Popen([os.path.join(build, "tgrund"), "-c", conf],
                             stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    except OSError:
        api.stop()  # the fake server is ours to stop, whatever happens
        raise
    start = time.monotonic()
    expected = api.stats()["expected_echoes"]
    last_done, last_t = 0, start
    rate = 0.0
    ok = False
    try:
        while time.monotonic() - start < a.timeout:
            time.sleep(0.5)
            if d.poll() is not None:
                print("\ntgrund exited with status %d; see %s/tgrund.log" % (d.returncode, tmp))
                break
            st = api.stats()
            now = time.monotonic()
            done = st["echoed"]
            rate = (done - last_done) / (now - last_t) if now > last_t else 0
            last_done, last_t = done, now
            sys.stdout.write("\rfetched %6d   done %6d   in flight %4d   %7.0f updates/s "
                             % (st["handed_out"], done, st["handed_out"] - done, rate))
            sys.stdout.flush()
            if done >= expected:
                ok = True
                break
        elapsed = time.monotonic() - start
        st = api.stats()
        print()
        print("summary: %d updates fetched, %d answered in %.1f s (%.0f updates/s overall)"
              % (st["handed_out"], st["echoed"], elapsed, st["echoed"] / elapsed))
        print("latency from hand-out to answer: p50 %s ms, p99 %s ms"
              % (st["latency_ms"]["p50"], st["latency_ms"]["p99"]))
        print("verification by the fake server: missing %d, duplicates %d, "
              "per-chat order inversions %d"
              % (st["missing"], st["duplicates"], st["inversions"]))
        ok = ok and st["missing"] == 0 and st["duplicates"] == 0 and st["inversions"] == 0
    finally:
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(30)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
        api.stop()
        log.close()
    print("tgrund stopped with status %d" % d.returncode)
    print("demo %s" % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
