"""systemd notification protocol, observed on a datagram socket we bind ourselves."""
import os
import signal
import socket
import struct
import time

import pytest

from updates import message
from waits import wait_log


def collect(sock, until, timeout):
    """Receive (pid, message) pairs until `until(msgs)` or timeout."""
    msgs = []
    end = time.monotonic() + timeout
    while time.monotonic() < end and not until(msgs):
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            break
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        msgs.append((pid, data.decode()))
    return msgs


@pytest.fixture
def notify(tmp_path):
    """(path, socket): a datagram socket bound at path that receives the sender's pid."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(path)
    yield path, sock
    sock.close()
    os.unlink(path)


def stop_says_stopping(d, sock, timeout):
    """SIGTERM: STOPPING=1 comes, and the daemon exits with 0 within timeout s."""
    d.proc.signal(signal.SIGTERM)
    end = collect(sock, lambda ms: any(m == "STOPPING=1" for _, m in ms), 10)
    assert "STOPPING=1" in [m for _, m in end]
    assert d.wait_exit(timeout) == 0


def test_ready_status_watchdog_stopping(fakeapi, tgrund, notify):
    path, sock = notify
    api = fakeapi()
    d = tgrund(api, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    msgs = collect(sock, lambda ms: sum("WATCHDOG=1" in m for _, m in ms) >= 3
                   and any(m.startswith("STATUS=") for _, m in ms), 15)
    texts = [m for _, m in msgs]
    assert texts and texts[0] == "READY=1", texts
    assert "workers ready" in d.log()
    # Every message comes from the master: workers do not inherit NOTIFY_SOCKET.
    assert {p for p, _ in msgs} == {d.pid}
    status = [m for m in texts if m.startswith("STATUS=")]
    assert status and "in flight 0" in status[0] and "polling" in status[0]
    stop_says_stopping(d, sock, 15)


def test_reload_and_stalled_worker_sequence(fakeapi, tgrund, notify):
    """RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a reload; the
    watchdog pauses while a worker misses heartbeats and resumes after it is
    replaced; STOPPING=1 at the end."""
    path, sock = notify
    api = fakeapi()
    d = tgrund(api, handler="stubborn",
               env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "600000"},
               conf={"workers": {"count": 2},
                     "limits": {"heartbeat_timeout": "2s", "max_attempts": 1}})
    msgs = collect(sock, lambda ms: any(m == "READY=1" for _, m in ms), 15)
    assert [m for _, m in msgs][0] == "READY=1"
    # Reload: RELOADING=1 with a monotonic timestamp, then READY=1.
    t_before = time.clock_gettime(time.CLOCK_MONOTONIC)
    d.proc.signal(signal.SIGHUP)
    msgs = collect(sock, lambda ms: any(m == "READY=1" for _, m in ms), 20)
    texts = [m for _, m in msgs]
    reloading = [m for m in texts if m.startswith("RELOADING=1")]
    assert reloading, texts
    usec = int(reloading[0].split("MONOTONIC_USEC=")[1].split()[0])
    assert abs(usec / 1e6 - t_before) < 5
    assert texts.index(reloading[0]) < texts.index("READY=1")
    assert "reload done" in d.log()
    # A spinning handler stalls one worker: watchdog pings stop until the
    # heartbeat kills it, then resume.
    api.push_updates([message(4242, "spin")])
    t0 = time.monotonic()
    assert d.proc.wait_log("no heartbeat for", 10)
    assert "a worker misses heartbeats; not telling systemd" in d.log()
    more = collect(sock, lambda ms: sum(m == "WATCHDOG=1" for _, m in ms) >= 2, 10)
    assert sum(m == "WATCHDOG=1" for _, m in more) >= 2, "watchdog did not resume"
    assert time.monotonic() - t0 < 20
    stop_says_stopping(d, sock, 20)


def test_cluster_status_says_leader_or_follower(fakeapi, tgrund, nats_cluster, tmp_path):
    """In cluster mode STATUS= names the node's role; a follower that takes over
    says leader."""
    from natscluster import node_conf
    nats = nats_cluster(1)
    api = fakeapi()
    socks, nodes = [], []
    try:
        for name in ("alpha", "beta"):
            path = str(tmp_path / ("%s.sock" % name))
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.bind(path)
            socks.append(sock)
            conf = node_conf(name, nats.urls, api.url, lease="2s", replicas=1)
            d = tgrund(api, conf=conf, env={"NOTIFY_SOCKET": path})
            d.wait_ready()
            wait_log(d.proc, "cluster: leader (" if name == "alpha" else
                     "cluster: follower (", 20)
            nodes.append(d)

        def says(sock, role):
            msgs = collect(sock, lambda ms: any(m.startswith("STATUS=" + role)
                                                for _, m in ms), 15)
            return [m for _, m in msgs if m.startswith("STATUS=")]
        assert any(m.startswith("STATUS=leader") for m in says(socks[0], "leader"))
        assert any(m.startswith("STATUS=follower") for m in says(socks[1], "follower"))
        assert nodes[0].stop() == 0
        assert any(m.startswith("STATUS=leader") for m in says(socks[1], "leader"))
    finally:
        for d in nodes:
            d.stop()
        for s in socks:
            s.close()
