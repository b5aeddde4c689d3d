"""The cluster mode on NATS JetStream: faults under a 20,000-update burst.

Every fault test runs a 3-server JetStream cluster (natscluster.py), 2 or 3
tgrund nodes and the fake Bot API on loopback. Each node reaches the fake API
under its own /__via/<node> prefix, so the fake's call record and poll log
say which node polled and which ran an update. The burst is held back until
every node is ready. Each test ends with 0 missing and 0 per-chat
inversions, and reports the duplicates (updates run twice) of its fault:

    cluster fault leader-kill: duplicates 12, missing 0, inversions 0, ...

printed and appended to $TGRUN_REPORT when it is set.
"""
import os
import random
import re
import signal
import time

from conftest import SANITIZED
from natscluster import NatsClient, node_conf
from procs import live_workers
from waits import wait_log, wait_until

LEASE_S = 2
BURST = 20000
# Released by the fake at this rate once every node is ready: 20 s of burst.
RATE = 1000
NAMES = ["alpha", "beta", "gamma"]
# Bounds for waits on the whole burst; the sanitizer build is slower.
DRAIN_S = 150 if SANITIZED else 90

LIMITS = {"update_timeout": "3s", "kill_grace": "1s", "max_attempts": 10,
          "shutdown_timeout": "5s"}


def report(fault, st, **extra):
    """One line per fault: what the lead quotes."""
    line = "cluster fault %s: duplicates %d, missing %d, inversions %d" % (
        fault, st["duplicates"], st["missing"], st["inversions"])
    for k, v in extra.items():
        line += ", %s %s" % (k.replace("_", " "), v)
    print(line)
    path = os.environ.get("TGRUN_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
    return line


ROLE = re.compile(r"cluster: (leader \(epoch (\d+)\)|follower \(leader: [^)]*\)|lost the lease)")


class Node:
    """One tgrund of the cluster, by name; start() again after a kill gives a
    new process (and directory) with the same node name and config."""

    def __init__(self, bed, name, urls, conf=None):
        self.bed = bed
        self.name = name
        self.urls = urls
        self.conf = conf or {}
        self.d = None
        self.generations = []      # every Tgrund this node ran

    def start(self):
        conf = node_conf(self.name, self.urls, self.bed.api.url, lease="%ds" % LEASE_S)
        conf.update({"workers": {"count": 1}, "limits": dict(LIMITS)})
        for sec, kv in self.conf.items():
            conf.setdefault(sec, {}).update(kv)
        self.d = self.bed.tgrund(self.bed.api, handler=self.bed.handler, conf=conf)
        self.generations.append(self.d)
        return self

    def alive(self):
        return self.d is not None and self.d.proc.alive()

    def log(self):
        return self.d.log()

    def role(self):
        """"leader", "follower", "lost" (the lease) or None, from the log's last role line."""
        last = None
        for m in ROLE.finditer(self.d.log()):
            last = m.group(1).split(" ")[0]
        return last

    def epoch(self):
        eps = [int(m.group(2)) for m in ROLE.finditer(self.d.log()) if m.group(2)]
        return eps[-1] if eps else None

    def kill(self, workers=False):
        """SIGKILL the master (and, with workers=True, its workers: the machine
        dies). Returns the monotonic time of the kill."""
        pids = self.d.worker_pids()
        t = time.monotonic()
        os.kill(self.d.pid, signal.SIGKILL)
        if workers:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        else:
            self.bed.orphans += pids
        assert self.d.wait_exit(10) == -signal.SIGKILL
        return t


class Bed:
    """The fake API with a held burst, the NATS cluster and the nodes."""

    def __init__(self, fakeapi, tgrund, nats_cluster, nodes=3, handler="echo_id",
                 seed=1, one_url_each=False, conf=None, count=BURST, rate=RATE):
        self.tgrund = tgrund
        self.handler = handler
        self.orphans = []
        self.nats = nats_cluster(3)
        # Each answer takes 20..30 ms: a node holds some updates in flight when it dies.
        self.api = fakeapi("--count", count, "--chats", 1000, "--users", 3000,
                           "--seed", seed, "--rate", rate, "--hold",
                           "--fault", "sendMessage:latency_ms=20,jitter_ms=10")
        self.expected = self.api.stats()["expected_echoes"]
        urls = self.nats.urls
        self.nodes = [Node(self, NAMES[i], [urls[i]] if one_url_each else urls, conf)
                      for i in range(nodes)]

    def start(self, first_leader=0, release=True):
        """Start the nodes (the `first_leader`th alone first, so that it creates the
        streams and leads; None: all at once), wait until all are ready with one
        leader, and release the burst."""
        if first_leader is not None:
            first_leader = self.nodes[first_leader]
            first_leader.start()
            first_leader.d.wait_ready(30)
            wait_log(first_leader.d.proc, "cluster: leader (epoch", 20)
        for n in self.nodes:
            if n.d is None:
                n.start()
        for n in self.nodes:
            n.d.wait_ready(30)
        lead = self.wait_leader(20)
        for n in self.nodes:
            if n is not lead:
                wait_log(n.d.proc, "cluster: follower (leader: %s)" % lead.name, 20)
        if release:
            self.api.release()
        return lead

    def leaders(self, exclude=()):
        return [n for n in self.nodes
                if n.alive() and n not in exclude and n.role() == "leader"]

    def wait_leader(self, timeout, exclude=()):
        """The one live node whose last role line says leader."""
        def one():
            ls = self.leaders(exclude)
            return ls[0] if len(ls) == 1 else None
        return wait_until(one, timeout, interval=0.05, what="exactly one leader among %s: %s"
                          % ([n.name for n in self.nodes if n not in exclude],
                             [(n.name, n.alive() and n.role()) for n in self.nodes]))

    def echoed(self):
        return self.api.stats()["echoed"]

    def wait_echoed_at_least(self, k, timeout=60):
        return wait_until(lambda: self.echoed() >= k, timeout,
                          what="%d updates echoed (the burst going on)" % k)

    def unanswered(self, most=20):
        """Up to `most` updates of a type that is answered, answered by nobody:
        [(id, type, chat_id)], to look for in the nodes' logs."""
        answered, seen_types = set(), set()
        for c in self.api.calls():
            i = echo_id(str((c.get("params") or {}).get("text") or ""))
            if i is not None:
                answered.add(i)
        out = []
        for i in range(1, int(self.api.stats()["updates_total"]) + 1):
            if i in answered:
                continue
            e = self.api.control("echoes?id=%d" % i)
            if e["echoes"]:
                seen_types.add(e["type"])
            else:
                out.append((i, e["type"], e["chat_id"]))
        return [u for u in out if u[1] in seen_types or u[1] == "message"][:most]

    def drain(self):
        """Wait for every expected echo; the fake API's statistics."""
        st = self.api.wait_stats(lambda s: s["echoed"] >= self.expected, DRAIN_S)
        if st["echoed"] < self.expected:
            raise AssertionError(
                "only %d of %d updates echoed within %ds: %r; roles %s; not answered "
                "(id, type, chat): %r" % (
                    st["echoed"], self.expected, DRAIN_S, st,
                    [(n.name, n.alive() and n.role()) for n in self.nodes],
                    self.unanswered()))
        return st

    def check(self, fault, st, **extra):
        line = report(fault, st, **extra)
        assert st["missing"] == 0, line
        assert st["inversions"] == 0, "per-chat order broke: " + line

    def stop_nodes(self):
        """SIGTERM every live node; their exit statuses by name."""
        out = {n.name: n.d.stop() for n in self.nodes if n.alive()}
        for pid in live_workers(self.orphans):
            os.kill(pid, signal.SIGKILL)
        return out

    def stop_cleanly(self):
        """stop_nodes(), asserting that every node exited 0 on SIGTERM."""
        st = self.stop_nodes()
        assert st and all(v == 0 for v in st.values()), \
            "exit statuses of the nodes on SIGTERM (negative: killed by that signal): %r" % st
        return st

    def runs_by(self, since_seq=0):
        """{node name: number of echoes it sent} from the call record."""
        out = {}
        for c in self.api.calls("sendMessage", since_seq):
            out[c.get("via")] = out.get(c.get("via"), 0) + 1
        return out


def call_seq(api):
    """The seq of the last call the fake API recorded (for calls(since=...))."""
    return api.control("calls?since=%d" % (1 << 40))["total"]


def longest_pause_ms(api, since_seq, k):
    """The longest time after fake time k without any sendMessage (echo) arriving."""
    times = [k] + [c["t_ms"] for c in api.calls("sendMessage", since_seq) if c["t_ms"] >= k]
    return max(b - a for a, b in zip(times, times[1:])) if len(times) > 1 else None


def echo_id(text):
    m = re.match(r"u(\d+)", text)
    return int(m.group(1)) if m else None


def failover_ms(bed, old, t_kill):
    """After `old` was killed at monotonic t_kill: the new leader, and the ms from
    the kill to (a) the new leader's first getUpdates and (b) the first echo of an
    update that the new leader fetched, i.e. the first update run under it."""
    api = bed.api
    k = api.to_fake_ms(t_kill)
    seq = call_seq(api)
    new = bed.wait_leader(LEASE_S + 10, exclude=(old,))
    found = {}

    def first_run():
        polls = [p for p in api.polls(via=new.name)["polls"] if p["t_ms"] >= k]
        if polls and "poll" not in found:
            found["poll"] = polls[0]["t_ms"] - k
        ids = set()
        for p in polls:
            if p["n"] > 0:
                ids.update(range(p["first_id"], p["last_id"] + 1))
        if not ids:
            return None
        times = [c["t_ms"] for c in api.calls("sendMessage", seq)
                 if c["t_ms"] >= k and echo_id(c["params"].get("text", "")) in ids]
        return min(times) - k if times else None
    run = wait_until(first_run, LEASE_S + 20, interval=0.2,
                     what="an update fetched by the new leader %s to run" % new.name)
    return new, found.get("poll"), run


# ---- start and stop ----------------------------------------------------------------------

def test_three_nodes_started_at_once_serve_a_burst_and_stop_cleanly(
        fakeapi, tgrund, nats_cluster):
    """A fresh NATS cluster, three nodes racing to create the streams and the lease."""
    bed = Bed(fakeapi, tgrund, nats_cluster, nodes=3, seed=30, count=3000)
    try:
        lead = bed.start(first_leader=None)
        assert [n.role() for n in bed.nodes].count("leader") == 1
        st = bed.drain()
        runs = bed.runs_by()
        assert all(runs.get(n.name, 0) > 0 for n in bed.nodes), runs
        bed.check("none (start at once)", st)
        assert lead.role() == "leader"
        assert bed.stop_cleanly() == {n.name: 0 for n in bed.nodes}
    finally:
        bed.stop_nodes()


def test_idle_nodes_stop_cleanly(fakeapi, tgrund, nats_cluster):
    """Nodes that never ran an update (the burst is held) end as cleanly as busy ones."""
    bed = Bed(fakeapi, tgrund, nats_cluster, nodes=2, seed=29, count=100)
    try:
        bed.start(release=False)
        time.sleep(1)
        assert bed.api.stats()["echoed"] == 0
        assert bed.stop_cleanly() == {n.name: 0 for n in bed.nodes}
    finally:
        bed.stop_nodes()


# ---- the fault tests -------------------------------------------------------------------

def test_leader_sigkill_twice_a_follower_takes_over_within_lease_plus_2s(
        fakeapi, tgrund, nats_cluster):
    bed = Bed(fakeapi, tgrund, nats_cluster, nodes=3, seed=31)
    rng = random.Random(31)
    lead = bed.start()
    failovers = []
    try:
        for k, (lo, hi) in enumerate([(0.15, 0.35), (0.5, 0.7)]):
            bed.wait_echoed_at_least(int(bed.expected * rng.uniform(lo, hi)))
            epoch = lead.epoch()
            t_kill = lead.kill()
            new, poll_ms, run_ms = failover_ms(bed, lead, t_kill)
            assert new is not lead and new.epoch() > epoch
            failovers.append((poll_ms, run_ms))
            # The killed node comes back, as a follower.
            lead.start()
            lead.d.wait_ready(30)
            wait_log(lead.d.proc, "cluster: follower (leader: %s)" % new.name, 20)
            lead = new
        st = bed.drain()
        bed.check("leader-kill", st, failover_ms=" / ".join(
            "poll %.0f run %.0f" % (p if p is not None else -1, r) for p, r in failovers))
        for _, run in failovers:
            assert run <= (LEASE_S + 2) * 1000, \
                "failover took %.0f ms (lease %d s + 2 s)" % (run, LEASE_S)
        # The killed masters' workers ended by themselves (update_timeout + kill_grace + 1 s).
        assert bed.orphans and wait_until(lambda: live_workers(bed.orphans) == [], 10), \
            live_workers(bed.orphans)
        bed.stop_cleanly()
    finally:
        bed.stop_nodes()


def test_follower_sigkill_its_in_flight_updates_are_redelivered(fakeapi, tgrund, nats_cluster):
    bed = Bed(fakeapi, tgrund, nats_cluster, nodes=3, seed=32)
    rng = random.Random(32)
    lead = bed.start()
    try:
        victim = [n for n in bed.nodes if n is not lead][rng.randrange(2)]
        bed.wait_echoed_at_least(int(bed.expected * rng.uniform(0.2, 0.4)))
        # Kill it while it has work: its own status says what it holds.
        def held():
            n = victim.d.status()["in_flight"]
            return n if n >= 3 else None
        in_flight = wait_until(held, 20, interval=0.02,
                               what="the follower to hold 3 updates or more")
        seq = call_seq(bed.api)
        t_kill = victim.kill(workers=True)
        k = bed.api.to_fake_ms(t_kill)
        st = bed.drain()
        # The survivors ran the rest, the victim nothing after its death.
        after = [c for c in bed.api.calls("sendMessage", seq) if c["t_ms"] > k + 50]
        assert all(c.get("via") != victim.name for c in after)
        assert lead.alive() and lead.role() == "leader"
        bed.check("follower-kill", st, in_flight_at_kill=in_flight)
        bed.stop_cleanly()
    finally:
        bed.stop_nodes()


def stream_leader(urls, stream):
    """The NATS server name leading `stream`, or None."""
    for url in urls:
        try:
            with NatsClient(url, timeout=3) as nc:
                r = nc.js("STREAM.INFO." + stream, timeout=3)
        except (OSError, RuntimeError, ValueError):
            continue
        lead = (r.get("cluster") or {}).get("leader")
        if lead:
            return lead
    return None


def test_nats_server_sigkill_the_cluster_goes_on(fakeapi, tgrund, nats_cluster):
    bed = Bed(fakeapi, tgrund, nats_cluster, nodes=3, seed=33)
    rng = random.Random(33)
    bed.start()
    try:
        bed.wait_echoed_at_least(int(bed.expected * rng.uniform(0.2, 0.4)))
        # The server that leads the work stream: the hardest one to lose.
        name = wait_until(lambda: stream_leader(bed.nats.urls, "TGRUN_testbot_WORK"), 10,
                          what="the work stream's leader")
        i = bed.nats.index_of(name)
        seq = call_seq(bed.api)
        t_kill = time.monotonic()
        bed.nats.kill(i)
        k = bed.api.to_fake_ms(t_kill)
        before = bed.echoed()
        # It goes on without it ...
        wait_until(lambda: bed.echoed() >= before + 2000, 30,
                   what="2000 more echoes with NATS server %s dead" % name)
        # ... and with it back.
        bed.nats.start(i)
        st = bed.drain()
        assert all(n.alive() for n in bed.nodes)
        bed.check("nats-server-kill", st, killed=name,
                  longest_pause_ms="%.0f" % longest_pause_ms(bed.api, seq, k))
        bed.stop_cleanly()
    finally:
        bed.stop_nodes()


def test_a_leader_cut_off_from_nats_stops_polling_and_another_takes_over(
        fakeapi, tgrund, nats_cluster):
    # Each node knows only its own NATS server (no_advertise: it learns no other).
    bed = Bed(fakeapi, tgrund, nats_cluster, nodes=2, seed=34, one_url_each=True)
    rng = random.Random(34)
    lead = bed.start()
    other = [n for n in bed.nodes if n is not lead][0]
    try:
        bed.wait_echoed_at_least(int(bed.expected * rng.uniform(0.2, 0.4)))
        i = bed.nats.urls.index(lead.urls[0])
        seq = call_seq(bed.api)
        t_stop = time.monotonic()
        bed.nats.stop(i)
        k = bed.api.to_fake_ms(t_stop)
        new = bed.wait_leader(LEASE_S + 10, exclude=(lead,))
        assert new is other
        wait_log(lead.d.proc, "cluster: lost the lease", LEASE_S + 5)
        # Past lease + one long poll: the cut-off node's last poll came in time.
        time.sleep(LEASE_S + 2.5)
        polls = bed.api.polls(via=lead.name)["polls"]
        last = max(p["t_ms"] for p in polls)
        assert last - k <= LEASE_S * 1000, \
            "the cut-off leader polled %.0f ms after losing NATS (lease %d s)" % (last - k,
                                                                                LEASE_S)
        # The other polls in its place (once the streams' leaders that were on the
        # stopped server have moved).
        took = wait_until(lambda: [p["t_ms"] - k for p in bed.api.polls(via=other.name)["polls"]
                                   if p["t_ms"] > k], 20,
                          what="the new leader %s to poll" % other.name)[0]
        # Its server back: it serves again, as a follower.
        bed.nats.start(i)
        wait_log(lead.d.proc, "cluster: follower (leader: %s)" % other.name, 20)
        st = bed.drain()
        bed.check("leader-cut-off", st, last_poll_after_cut_ms="%.0f" % (last - k),
                  new_leader_polled_after_ms="%.0f" % took,
                  longest_pause_ms="%.0f" % longest_pause_ms(bed.api, seq, k))
        bed.stop_cleanly()
    finally:
        bed.stop_nodes()


def test_a_paused_leader_wakes_up_beside_a_new_one_and_steps_down(
        fakeapi, tgrund, nats_cluster):
    """Two leaders at once: the leader's master is stopped (SIGSTOP, as a long
    pause would) past its lease, another node takes over, then it resumes. It
    must step down at once, poll no more, and lose or reorder nothing."""
    bed = Bed(fakeapi, tgrund, nats_cluster, nodes=2, seed=36)
    rng = random.Random(36)
    lead = bed.start()
    other = [n for n in bed.nodes if n is not lead][0]
    try:
        bed.wait_echoed_at_least(int(bed.expected * rng.uniform(0.2, 0.4)))
        epoch = lead.epoch()
        os.kill(lead.d.pid, signal.SIGSTOP)
        try:
            new = bed.wait_leader(LEASE_S + 10, exclude=(lead,))
            assert new is other and new.epoch() > epoch
            bed.wait_echoed_at_least(bed.echoed() + 500)
        finally:
            t_cont = time.monotonic()
            os.kill(lead.d.pid, signal.SIGCONT)
        k = bed.api.to_fake_ms(t_cont)
        wait_log(lead.d.proc, "cluster: lost the lease", 10)
        wait_log(lead.d.proc, "cluster: follower (leader: %s)" % other.name, 20)
        st = bed.drain()
        late = [p for p in bed.api.polls(via=lead.name)["polls"] if p["t_ms"] >= k]
        assert late == [], "the old leader polled after it woke up: %r" % late
        assert other.role() == "leader" and lead.role() == "follower"
        bed.check("paused-leader", st, conflicts=bed.api.stats()["conflicts"])
        bed.stop_cleanly()
    finally:
        if lead.alive():
            os.kill(lead.d.pid, signal.SIGCONT)
        bed.stop_nodes()


def test_sighup_reload_on_one_node_while_the_others_serve(fakeapi, tgrund, nats_cluster):
    bed = Bed(fakeapi, tgrund, nats_cluster, nodes=3, seed=35,
              conf={"handler": {"tag": "v0"}})
    lead = bed.start()
    epoch = lead.epoch()
    try:
        # A follower first, then the leader itself.
        order = [n for n in bed.nodes if n is not lead][:1] + [lead]
        for j, node in enumerate(order):
            bed.wait_echoed_at_least(int(bed.expected * (0.25 + 0.25 * j)))
            seq = call_seq(bed.api)
            path = node.d.conf_path
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text.replace("tag = v0", "tag = v1"))
            node.d.proc.signal(signal.SIGHUP)
            wait_log(node.d.proc, "reload done: generation 2 serves", 30)
            # The others served while it reloaded.
            runs = bed.runs_by(seq)
            assert sum(v for name, v in runs.items() if name != node.name) > 0, runs
            assert node.alive()
        st = bed.drain()
        # Both reloaded nodes answer with the new tag, the third with the old.
        tags = {}
        for c in bed.api.calls("sendMessage"):
            t = c["params"].get("text", "")
            tags.setdefault(c.get("via"), set()).add(t.split(" ", 1)[1] if " " in t else "")
        for node in order:
            assert "v1" in tags.get(node.name, set()), tags
        # The leader's reload did not cost its lease.
        assert lead.role() == "leader" and lead.epoch() == epoch
        bed.check("sighup-reload", st)
        bed.stop_cleanly()
    finally:
        bed.stop_nodes()


# ---- the CPU-burning handler the cluster benchmark uses ---------------------------------

def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_burn_handler_spends_its_cpu_time_and_echoes(fakeapi, tgrund):
    api = fakeapi("--count", "100", "--chats", "10", "--mix", "message=1", "--hold")
    d = tgrund(api, handler="burn", conf={"workers": {"count": 1},
                                          "handler": {"burn_us": 20000, "tag": "b"}})
    d.wait_ready()
    [worker] = d.worker_pids()
    cpu0 = cpu_seconds(worker)
    api.release()
    st = api.wait_stats(lambda s: s["echoed"] >= 100, 30)
    assert (st["echoed"], st["missing"], st["duplicates"], st["inversions"]) == (100, 0, 0, 0)
    # 100 updates x 20 ms of CPU each, in the one worker.
    assert cpu_seconds(worker) - cpu0 >= 0.9 * 100 * 0.020
    assert all(c["params"]["text"].endswith(" b") for c in api.calls("sendMessage"))
    assert d.stop() == 0


def test_the_burn_handler_refuses_a_bad_burn_us(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="burn", conf={"handler": {"burn_us": "lots"}})
    assert d.wait_exit(20) not in (None, 0)
    assert "burn_us = lots: expected 0..10000000" in d.log()
