"""In cluster mode a handler failure follows the single-machine rule: the work item
comes back after the retry delay (on any node), keeps its chat's order, and after
max_attempts is dead-lettered with its last error."""
from test_cluster import Bed
from test_lua import no_sanitizer_reports  # noqa: F401 (autouse: SANITIZE=1 reports fail)
from test_retry import flaky_error, texts
from updates import message
from waits import wait_until


def test_cluster_handler_failure_is_retried_then_dead_lettered(fakeapi, tgrund,
                                                               nats_cluster):
    bed = Bed(fakeapi, tgrund, nats_cluster, nodes=2, handler="flaky", count=0,
              conf={"limits": {"max_attempts": 3, "retry_delay": "200ms"}})
    lead = bed.start()
    try:
        api = bed.api
        a = api.push_updates([message(500, "#fail2 first"), message(500, "second"),
                              message(512, "#bare"), message(512, "after"),
                              message(513, "#final")])["first_id"]
        wait_until(lambda: len(texts(api, 500)) == 2 and texts(api, 512), 60,
                   what="both chats answered")
        # The failing update ran three times (on whichever node); its chat waited.
        assert texts(api, 500) == ["u%d a3" % a, "u%d a1" % (a + 1)]
        assert texts(api, 512) == ["u%d a1" % (a + 3)]
        assert api.stats()["inversions"] == 0
        wait_until(lambda: lead.d.status()["dead_letters"] == 2, 20, what="2 dead letters")
        dl = {x["update_id"]: x for x in
              lead.d.ctl("dead-letters", "list")["dead_letters"]}
        assert sorted(dl) == [a + 2, a + 4], dl
        assert (dl[a + 2]["attempts"], dl[a + 2]["error"]) == \
            (3, "the handler failed: handler returned -1"), dl
        # tgrun_no_retry: dead-lettered at its first attempt.
        assert (dl[a + 4]["attempts"], dl[a + 4]["error"]) == \
            (1, "the handler failed: flaky: no point in trying again"), dl
        logs = "".join(n.log() for n in bed.nodes)
        assert flaky_error(1) in logs and flaky_error(2) in logs
    finally:
        bed.stop_nodes()
