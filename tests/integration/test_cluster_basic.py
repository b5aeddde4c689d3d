"""The cluster mode's basics: two nodes share a burst in per-chat order, one leads, and a
killed leader is replaced within the lease plus 2 s with nothing missing."""
import subprocess

from test_cluster import LEASE_S, Bed, failover_ms
from test_metrics import metrics_port, parse, scrape


def metrics(node):
    status, _, text = scrape(metrics_port(node.d))
    assert status == 200
    return parse(text)


def plain_status(build, node):
    """`tgrunctl status` of a node, as text."""
    p = subprocess.run(["%s/tgrunctl" % build, "-c", node.d.conf_path, "status"],
                       cwd=node.d.dir, env=node.d.env, capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_two_nodes_share_a_burst_and_a_follower_takes_over(fakeapi, tgrund, nats_cluster):
    bed = Bed(fakeapi, tgrund, nats_cluster, nodes=2, seed=11, count=4000, rate=800,
              conf={"metrics": {"listen": "127.0.0.1:0"}})
    lead = bed.start()
    try:
        other = next(n for n in bed.nodes if n is not lead)
        assert other.role() == "follower"
        ls, fs = lead.d.status()["cluster"], other.d.status()["cluster"]
        assert (ls["node"], ls["role"], ls["leader"]) == (lead.name, "leader", lead.name)
        assert (fs["node"], fs["role"], fs["leader"]) == (other.name, "follower", lead.name)
        assert ls["epoch"] > 0 and fs["epoch"] in (0, ls["epoch"])
        text = plain_status(lead.d.build, other)
        assert "cluster role:     follower" in text, text

        # Both nodes run the burst: the leader releases, everyone pulls.
        bed.wait_echoed_at_least(bed.expected // 3)
        runs = bed.runs_by()
        assert runs.get(lead.name, 0) > 0 and runs.get(other.name, 0) > 0, runs
        assert lead.d.status()["cluster"]["pulled"] > 0
        mf = metrics(other)
        assert mf["tgrun_cluster_leader"] == 0 and mf["tgrun_cluster_nodes"] == 2, mf
        assert mf["tgrun_cluster_pulled_total"] >= mf["tgrun_cluster_ran_total"] > 0, mf
        assert 'tgrun_cluster_stream_messages{stream="journal"}' in mf, mf

        t_kill = lead.kill(workers=True)
        new, poll_ms, run_ms = failover_ms(bed, lead, t_kill)
        assert new is other
        assert run_ms <= (LEASE_S + 2) * 1000, \
            "failover took %.0f ms (lease %d s + 2 s)" % (run_ms, LEASE_S)
        st = bed.drain()
        bed.check("basic leader-kill (2 nodes)", st, failover_ms=run_ms)
        assert other.d.status()["cluster"]["role"] == "leader"
        assert metrics(other)["tgrun_cluster_leader"] == 1
        assert bed.stop_nodes() == {other.name: 0}
    finally:
        bed.stop_nodes()
