"""The 3-server JetStream cluster the cluster tests run on (natscluster.py)."""
import json
import signal

from natscluster import NatsClient
from waits import wait_until


def make_stream(client, name, replicas=3):
    r = client.js("STREAM.CREATE." + name, {
        "name": name, "subjects": ["%s.>" % name.lower()], "storage": "file",
        "num_replicas": replicas}, timeout=10)
    assert "error" not in r, r
    return r


def publish(client, subject, body):
    """A JetStream publish; the ack's sequence number."""
    ack = json.loads(client.request(subject, body, timeout=10).decode())
    assert "error" not in ack, ack
    return ack["seq"]


def stream_info(client, name):
    r = client.js("STREAM.INFO." + name, timeout=10)
    assert "error" not in r, r
    return r


def replicas_current(client, name, size):
    """True when the stream has a leader and size-1 replicas that are all current."""
    try:
        c = stream_info(client, name).get("cluster") or {}
    except (OSError, RuntimeError, AssertionError):
        return False
    reps = c.get("replicas") or []
    return bool(c.get("leader")) and len(reps) == size - 1 and all(r.get("current") for r in reps)


def test_three_servers_elect_a_meta_leader_and_keep_three_replicas(nats_cluster):
    c = nats_cluster(3)
    assert len(c.alive()) == 3 and len(set(c.pids)) == 3
    assert len(set(c.urls)) == 3 and all(u.startswith("nats://127.0.0.1:") for u in c.urls)
    leader = c.meta_leader()
    assert leader in ("n0", "n1", "n2")
    for s in c.servers:
        assert s.meta() == (leader, 3)
        assert s.routes() == 2
    with NatsClient(c.urls[0]) as nc:
        # A client learns no other server: one URL means one server.
        assert not nc.info.get("connect_urls"), nc.info
        r = make_stream(nc, "PROBE")
        assert r["config"]["num_replicas"] == 3
        for i in range(10):
            assert publish(nc, "probe.x", "m%d" % i) == i + 1
        wait_until(lambda: replicas_current(nc, "PROBE", 3), 10,
                   what="the stream's two replicas to be current")
        assert stream_info(nc, "PROBE")["state"]["messages"] == 10


def test_a_killed_server_is_replaced_and_rejoins_when_restarted(nats_cluster):
    c = nats_cluster(3)
    leader = c.meta_leader()
    i = c.index_of(leader)
    other = (i + 1) % 3
    with NatsClient(c.urls[other]) as nc:
        make_stream(nc, "PROBE")
        for k in range(5):
            publish(nc, "probe.x", "before %d" % k)
    old_pid = c.servers[i].pid
    c.kill(i)
    assert c.servers[i].proc.p.returncode == -signal.SIGKILL
    assert not c.servers[i].alive()
    # The two others elect a new meta leader and keep the stream writable.
    new = wait_until(lambda: c.meta_leader() not in (None, leader) and c.meta_leader(), 20,
                     what="a new meta leader after killing %s" % leader)
    assert new != leader
    with NatsClient(c.urls[other]) as nc:
        for k in range(5):
            # A retried publish is deduplicated by its message id.
            wait_until(lambda: _try_publish(nc, "probe.x", "during %d" % k), 15,
                       what="a publish acked by the two remaining servers")
    # Restarted with the same ports and store: it rejoins and catches up.
    c.start(i)
    assert c.servers[i].pid != old_pid
    assert c.servers[i].url == c.urls[i]
    assert c.wait_ready(20) in ("n0", "n1", "n2")
    with NatsClient(c.urls[i]) as nc:
        wait_until(lambda: replicas_current(nc, "PROBE", 3), 20,
                   what="the restarted server's replica to catch up")
        assert stream_info(nc, "PROBE")["state"]["messages"] == 10
    wait_until(lambda: (c.servers[i].monitor("jsz") or {}).get("messages") == 10, 10,
               what="the restarted server to hold all 10 messages itself")


def test_a_stopped_follower_server_starts_again(nats_cluster):
    c = nats_cluster(3)
    i = (c.index_of(c.meta_leader()) + 1) % 3
    assert c.stop(i) is not None
    assert not c.servers[i].alive()
    assert c.wait_ready(10)
    c.start(i)
    assert len(c.alive()) == 3
    assert all(s.routes() == 2 for s in c.servers)


def _try_publish(nc, subject, body):
    try:
        ack = json.loads(nc.request(subject, body, timeout=3,
                                    headers={"Nats-Msg-Id": body}).decode())
    except (OSError, RuntimeError, ValueError):
        return False
    return "seq" in ack
