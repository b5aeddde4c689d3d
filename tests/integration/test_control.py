"""The control socket and tgrunctl: every command, its output, exit statuses, and a fuzz."""
import json
import os
import random
import socket
import stat
import subprocess
import time

from daemon import wait_until
from conftest import BUILD
from updates import message



def sock_path(d):
    return os.path.join(d.dir, "testbot.control.sock")


def ctl(d, *args, as_json=False, conf=None, timeout=20):
    """Run tgrunctl against daemon `d`: (exit status, stdout, stderr)."""
    argv = [os.path.join(BUILD, "tgrunctl"), "-c", conf or d.conf_path]
    if as_json:
        argv.append("--json")
    argv += [str(a) for a in args]
    p = subprocess.run(argv, cwd=d.dir, capture_output=True, timeout=timeout,
                       text=True, env=d.env)
    return p.returncode, p.stdout, p.stderr


def ctl_json(d, *args):
    st, out, err = ctl(d, *args, as_json=True)
    reply = json.loads(out)
    assert (st == 0) == reply["ok"], (st, out, err)
    return reply


def request(path, obj, timeout=10):
    """One request on a fresh connection; the parsed reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall((json.dumps(obj) + "\n").encode())
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf.split(b"\n", 1)[0])


def get_updates_calls(api):
    return api.stats()["calls"].get("getUpdates", 0)


def echoed(api, n, timeout=30):
    st = api.wait_stats(lambda s: s["echoed"] >= n, timeout)
    assert st["echoed"] >= n, st
    return st


# ---- status, workers, socket ----------------------------------------------------------

def test_status_workers_and_socket_mode(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api).wait_ready()
    path = sock_path(d)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert "control: listening on %s" % path in d.log()

    api.push_updates([message(900 + i % 5, "hi %d" % i) for i in range(20)])
    echoed(api, 20)
    assert wait_until(lambda: ctl_json(d, "status")["done"] == 20, 10)
    s = ctl_json(d, "status")
    assert s["state"] == "polling"
    assert (s["fetched"], s["done"], s["failed"], s["retried"]) == (20, 20, 0, 0)
    assert (s["in_flight"], s["pending"], s["dead_letters"], s["timed_out"]) == (0, 0, 0, 0)
    assert s["generation"] == 1 and s["workers"] == 2 and s["worker_count"] == 2
    assert s["journal"]["enabled"] is True and s["journal"]["bytes"] > 0
    assert s["since_last_poll_s"] is not None and s["since_last_poll_s"] < 5
    assert s["pid"] == d.pid

    st, out, _ = ctl(d, "status")
    assert st == 0
    assert "state:            polling" in out
    assert "done:             20" in out
    assert "workers:          2 of 2 ready" in out

    w = ctl_json(d, "workers")["workers"]
    assert len(w) == 2
    assert sorted(x["pid"] for x in w) == d.worker_pids()
    assert sorted(x["slot"] for x in w) == [0, 1]
    assert all(x["state"] == "ready" and x["generation"] == 1 for x in w)
    assert sum(x["done"] for x in w) == 20
    assert all(x["rss_bytes"] > 100000 and 0 <= x["heartbeat_ms"] < 15000 for x in w)
    st, out, _ = ctl(d, "workers")
    lines = out.splitlines()
    assert lines[0].split() == ["SLOT", "PID", "GEN", "STATE", "INFLIGHT", "DONE",
                                "FAILED", "RSS", "HEARTBEAT"]
    assert len(lines) == 3 and all("ready" in ln for ln in lines[1:])
    # Columns line up under their headers.
    col = lines[0].index("STATE")
    assert all(ln[col:col + 5] == "ready" for ln in lines[1:])
    assert len({len(ln) for ln in lines}) == 1, lines

    assert d.stop() == 0
    assert not os.path.exists(path), "the socket outlived the daemon"


def test_reload_bumps_generation(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api).wait_ready()
    old = set(d.worker_pids())
    r = ctl_json(d, "reload")
    assert r["reload"] == "started"
    assert wait_until(lambda: ctl_json(d, "status")["generation"] == 2, 15)
    assert wait_until(lambda: all(x["generation"] == 2 for x in
                                  ctl_json(d, "workers")["workers"]), 15)
    assert not old & set(d.worker_pids())
    st, out, _ = ctl(d, "reload")
    assert st == 0 and out.startswith("reload ")


def no_poll_in_flight(d, api, t):
    """Whether the daemon, paused after time.monotonic() `t`, has no getUpdates
    left: it took in a poll's answer after `t` (its clock is CLOCK_MONOTONIC
    too, in whole ms), so any poll it sent before the pause has ended, and
    the fake API holds no call."""
    now = time.monotonic()
    since = ctl_json(d, "status")["since_last_poll_s"]
    if since is None or since + 0.002 >= now - t:
        return False
    s = api.stats()
    return sum(s["calls"].values()) == sum(s["responses"].values())


def test_pause_and_resume_polling(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"poll": {"timeout": "1s"}}).wait_ready()
    t0 = time.monotonic()
    st, out, _ = ctl(d, "pause")
    assert st == 0 and out.strip() == "paused (control)"
    assert ctl_json(d, "status")["state"] == "paused (control)"
    # The long poll in flight ends within [poll] timeout (1 s); none follows.
    wait_until(lambda: no_poll_in_flight(d, api, t0), 10,
               what="the end of the long poll in flight at the pause")
    before = get_updates_calls(api)
    api.push_updates([message(950, "while paused")])
    # A negative window: unpaused, the next poll would have gone out with the
    # answer we just saw taken in, and the update would be echoed at once.
    time.sleep(0.5)
    assert get_updates_calls(api) == before, "getUpdates called while paused"
    assert api.stats()["echoed"] == 0
    st, out, _ = ctl(d, "resume")
    assert st == 0 and out.strip() == "polling"
    echoed(api, 1, 10)
    assert get_updates_calls(api) > before
    assert "polling paused on the control socket" in d.log()


# ---- dead letters -------------------------------------------------------------------------

def test_dead_letters_list_show_retry_drop(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="crash", conf={"limits": {"max_attempts": 2}}).wait_ready()
    r = api.push_updates([message(960, "#crash one"), message(961, "#crash two"),
                          message(962, "fine")])
    a, b = r["first_id"], r["first_id"] + 1
    assert wait_until(lambda: ctl_json(d, "status")["dead_letters"] == 2, 30)

    dl = ctl_json(d, "dead-letters", "list")["dead_letters"]
    assert [x["update_id"] for x in dl] == [a, b]
    assert all(x["attempts"] == 2 and x["type"] == "message" for x in dl)
    assert dl[0]["error"] == "its worker died while it ran"
    st, out, _ = ctl(d, "dead-letters", "list")
    assert st == 0
    assert out.splitlines()[0].split() == ["UPDATE", "TYPE", "ATTEMPTS", "DIED", "ERROR"]
    assert str(a) in out and "its worker died" in out

    one = ctl_json(d, "dead-letters", "show", a)["dead_letter"]
    assert one["update"]["message"]["text"] == "#crash one"
    st, out, _ = ctl(d, "dead-letters", "show", a)
    assert st == 0 and "#crash one" in out and "attempts:  2" in out
    st, _, err = ctl(d, "dead-letters", "show", 999999)
    assert st == 1 and "no such dead letter" in err

    # The bug is fixed: a handler that does not crash, then the retry runs it now.
    conf = d.conf_path
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("crash.so", "echo_id.so"))
    ctl_json(d, "reload")
    assert wait_until(lambda: ctl_json(d, "status")["generation"] == 2, 15)
    assert ctl_json(d, "dead-letters", "retry", a)["retried"] == 1
    wait_until(lambda: any(c["params"].get("text") == "u%d" % a
                           for c in api.calls("sendMessage")), 15)
    assert "u%d" % a in [c["params"].get("text") for c in api.calls("sendMessage")]
    assert [x["update_id"] for x in ctl_json(d, "dead-letters", "list")["dead_letters"]] == [b]

    st, out, _ = ctl(d, "dead-letters", "drop", b)
    assert st == 0 and "1 dead letters dropped" in out
    assert ctl_json(d, "dead-letters", "list")["dead_letters"] == []
    st, out, _ = ctl(d, "dead-letters", "list")
    assert out.strip() == "no dead letters"
    assert ctl_json(d, "dead-letters", "drop", "all")["dropped"] == 0
    assert ctl_json(d, "status")["dead_letters"] == 0
    assert d.proc.alive()


def test_tgrunctl_escapes_control_characters_of_updates(fakeapi, tgrund):
    """An update's type key is outside text: tgrunctl shows its control
    characters escaped, never as terminal escape sequences or extra lines."""
    api = fakeapi()
    d = tgrund(api, handler="crash", conf={"limits": {"max_attempts": 1}}).wait_ready()
    evil = "\x1b]0;owned\x07\x1b[2J\nFAKE 1 message 9 x y\x7f\u009b"
    msg = message(964, "#crash")["message"]
    # The first key after update_id is what the dead letter calls its type.
    r = api.push_updates([{evil: {"chat": msg["chat"]}, "message": msg}])
    uid = r["first_id"]
    assert wait_until(lambda: ctl_json(d, "status")["dead_letters"] == 1, 30)
    assert ctl_json(d, "dead-letters", "list")["dead_letters"][0]["type"] == evil
    shown = "\\x1b]0;owned\\x07\\x1b[2J\\nFAKE 1 message 9 x y\\x7f\\xc2\\x9b"
    st, out, _ = ctl(d, "dead-letters", "list")
    assert st == 0
    for bad in ("\x1b", "\x07", "\x7f", "\u009b", "\r"):
        assert bad not in out, repr(out)
    assert len(out.splitlines()) == 2, repr(out)
    assert shown in out, repr(out)
    st, out, _ = ctl(d, "dead-letters", "show", uid)
    assert st == 0
    for bad in ("\x1b", "\x07", "\x7f", "\u009b"):
        assert bad not in out, repr(out)
    assert out.splitlines()[0] == "update:    %d (%s)" % (uid, shown), repr(out)


def test_dead_letters_without_journal(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"journal": {"enabled": "no"}}).wait_ready()
    st, out, err = ctl(d, "dead-letters", "list")
    assert st == 1 and "journal disabled" in err
    r = ctl_json(d, "dead-letters", "retry", "all")
    assert r == {"ok": False, "error": "journal disabled"}
    assert ctl_json(d, "status")["journal"]["enabled"] is False


# ---- fibers ---------------------------------------------------------------------------------

def test_fibers_shows_a_sleeping_update(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="slow").wait_ready()
    r = api.push_updates([message(970, "sleep 5")])
    uid = r["first_id"]
    assert wait_until(lambda: ctl_json(d, "status")["in_flight"] == 1, 10)
    found = None
    for slot in (0, 1):
        rep = ctl_json(d, "fibers", slot)
        assert rep["worker"] == slot and rep["pid"] in d.worker_pids()
        for f in rep["fibers"]:
            if f["update_id"] == uid:
                found = (slot, f)
    assert found, "no worker reported update %d" % uid
    slot, f = found
    assert f["type"] == "message" and f["what"] == "sleep" and f["waited_ms"] >= 0
    st, out, _ = ctl(d, "fibers", slot)
    assert st == 0 and str(uid) in out and "sleep" in out
    st, _, err = ctl(d, "fibers", 7)
    assert st == 1 and "no ready worker" in err


# ---- clients that misbehave -------------------------------------------------------------------

def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def test_client_that_writes_without_reading(fakeapi, tgrund):
    """Replies to a client that does not read are bounded: the master stops
    reading its requests instead of queueing a reply for each."""
    api = fakeapi()
    d = tgrund(api).wait_ready()
    path = sock_path(d)
    one = b'{"v":1,"cmd":"status"}\n'
    rss0 = vmrss_kib(d.pid)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.setblocking(False)
    sent = blocked = 0
    end = time.monotonic() + 4
    while time.monotonic() < end:
        try:
            sent += s.send(one * 512)
        except BlockingIOError:
            blocked += 1
            time.sleep(0.01)
    grown = vmrss_kib(d.pid) - rss0
    print("sent %d requests, the master grew by %d KiB" % (sent // len(one), grown))
    assert blocked > 0, "the master read every request it was sent"
    assert grown < 20 * 1024, "the master grew by %d KiB" % grown
    # Others are still served meanwhile.
    r = request(path, {"v": 1, "cmd": "status"})
    assert r["ok"] and r["state"] == "polling"
    # Requests were held back, not dropped: reading gets a reply to each whole
    # line, in order, even after the client shut down its side.
    s.setblocking(True)
    s.settimeout(30)
    s.shutdown(socket.SHUT_WR)
    want = sent // len(one)
    got = 0
    tail = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += chunk.count(b"\n")
        tail = (tail + chunk)[-4096:]
    s.close()
    assert got == want, (got, want)
    assert json.loads(tail.split(b"\n")[-2])["ok"] is True
    assert d.proc.alive()


# ---- tgrunctl itself ---------------------------------------------------------------------------

def test_tgrunctl_exit_statuses(fakeapi, tgrund, procs):
    api = fakeapi()
    d = tgrund(api).wait_ready()
    path = sock_path(d)
    st, out, err = ctl(d, "frobnicate")
    assert st == 2 and "unknown command" in err
    st, _, _ = ctl(d, "fibers", "x")
    assert st == 2
    st, _, err = ctl(d, "status", conf=os.path.join(d.dir, "missing.conf"))
    assert st == 2 and "missing.conf" in err
    p = subprocess.run([os.path.join(BUILD, "tgrunctl"), "-s", path, "--json", "status"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0 and json.loads(p.stdout)["ok"] is True
    assert d.stop() == 0
    st, _, err = ctl(d, "status")
    assert st == 3 and path in err
    # A stale socket file (a killed daemon) is not reachable either.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    st, _, err = ctl(d, "status")
    assert st == 3 and path in err


def test_stale_socket_replaced_and_live_one_refused(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, start=False)
    path = sock_path(d)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    d.start().wait_ready()
    assert ctl_json(d, "status")["ok"]
    # A second daemon with the same socket refuses to start and leaves it alone.
    conf2 = os.path.join(d.dir, "second.conf")
    with open(d.conf_path) as f:
        text = f.read()
    with open(conf2, "w") as f:
        f.write(text.replace(os.path.join(d.dir, "journal.db"),
                             os.path.join(d.dir, "journal2.db")) +
                "\n[control]\nsocket = %s\n" % path)
    p = subprocess.run([os.path.join(BUILD, "tgrund"), "-c", conf2], cwd=d.dir,
                       capture_output=True, text=True, timeout=30, env=d.env)
    assert p.returncode != 0 and "another process is listening" in p.stderr
    assert ctl_json(d, "status")["ok"]


def test_control_disabled(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"control": {"enabled": "no"}}).wait_ready()
    assert not os.path.exists(sock_path(d))


# ---- fuzz ------------------------------------------------------------------------------------------

def _junk(rng):
    kind = rng.randrange(12)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if kind == 1:
        return json.dumps(rng.choice([1, "x", None, [], [1, 2], 3.5, True])).encode()
    if kind == 2:
        return json.dumps({"v": rng.choice([0, 2, "1", None, 1.0, -1]),
                           "cmd": "status"}).encode()
    if kind == 3:
        return json.dumps({"v": 1, "cmd": rng.choice(["", "stat", "STATUS", "x" * 300,
                                                      "fibers\u0000", 5, None])}).encode()
    if kind == 4:
        return json.dumps({"v": 1, "cmd": "fibers",
                           "worker": rng.choice([-1, 99, "0", None, 1e9, 2 ** 62])}).encode()
    if kind == 5:
        return json.dumps({"v": 1, "cmd": "dead-letters",
                           "action": rng.choice(["list", "show", "retry", "drop", "burn",
                                                 None, 3]),
                           "id": rng.choice([-5, 0, 123456789, "all", "x", None, 2 ** 63 - 1,
                                             [1]])}).encode()
    if kind == 6:
        return b'{"v":1,"cmd":"status"' + b"}" * rng.randrange(0, 3) + b"]"
    if kind == 7:
        return b'{"v":1,"v":1,"cmd":"status"}'
    if kind == 8:
        return json.dumps({"v": 1, "cmd": rng.choice(["status", "workers"])}).encode()
    if kind == 9:
        return b"\x00" * rng.randrange(1, 50)
    if kind == 10:
        return b'"' + b"\\u" * rng.randrange(1, 20) + b'"'
    return json.dumps({"v": 1, "cmd": "status", "extra": "y" * rng.randrange(0, 8000)}).encode()


def test_fuzz_the_control_socket(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api).wait_ready()
    path = sock_path(d)
    rng = random.Random(20240611)
    sent = replies = 0
    end = time.monotonic() + 10
    while time.monotonic() < end and sent < 4000:
        mode = rng.randrange(10)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(path)
        try:
            if mode == 0:
                # Oversized line: an error reply, then the daemon closes.
                s.sendall(b"x" * rng.randrange(8200, 40000))
                data = s.recv(4096)
                assert b"longer than 8192" in data
            elif mode == 1:
                # Truncated: half a request, then gone.
                s.sendall(b'{"v":1,"cmd":"sta')
            elif mode == 2:
                # Gone before the reply is read.
                s.sendall(b'{"v":1,"cmd":"workers"}\n' * 5)
            else:
                batch = [_junk(rng).replace(b"\n", b" ") for _ in range(rng.randrange(1, 40))]
                s.sendall(b"".join(x + b"\n" for x in batch))
                sent += len(batch)
                buf = b""
                while buf.count(b"\n") < len(batch):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                lines = buf.split(b"\n")[:-1]
                assert len(lines) == len(batch), (batch, buf)
                for ln in lines:
                    assert "ok" in json.loads(ln)
                replies += len(lines)
            sent += 1
        finally:
            s.close()
    print("fuzz: %d requests, %d replies" % (sent, replies))
    assert sent >= 1000
    assert d.proc.alive()
    s = request(path, {"v": 1, "cmd": "status"})
    assert s["ok"] and s["state"] == "polling"
    api.push_updates([message(990 + i, "after fuzz") for i in range(10)])
    echoed(api, 10)
    assert d.stop() == 0
