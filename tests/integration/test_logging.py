"""Log format: journald priorities, readable lines with roles and slots, levels."""
import re

from daemon import wait_until
from updates import message
from waits import wait_echoed


def test_journald_priority_prefixes(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, env={"JOURNAL_STREAM": "8:12345"}).wait_ready()
    d.stop()
    lines = [l for l in d.log().splitlines() if l]
    assert lines
    # Every line starts with <N> and the process role; no timestamp.
    for line in lines:
        assert re.match(r"^<[3-7]>(master|worker \d+): ", line), line
    assert any(l.startswith("<5>master: ") for l in lines)


def test_readable_lines_with_timestamp_level_and_role(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"log": {"level": "debug"}}).wait_ready()
    d.stop()
    lines = [l for l in d.log().splitlines() if l]
    pat = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} "
                     r"\[(error|warn|notice|info|debug)\] (master|worker \d+): ")
    assert all(pat.match(l) for l in lines), [l for l in lines if not pat.match(l)][:3]
    # Workers' lines carry their slot number.
    assert any(" worker 0: " in l for l in lines) and any(" worker 1: " in l for l in lines)


def test_level_filters_and_v_raises_it(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"log": {"level": "warn"}})
    # "workers ready" is a notice: filtered out; wait for the workers instead.
    assert wait_until(lambda: len(d.worker_pids()) == 2, 15)
    # Polling begins right after "workers ready" would be logged.
    wait_until(lambda: api.stats()["calls"].get("getUpdates", 0) >= 1, 15,
               what="the first getUpdates")
    assert d.stop() == 0
    assert "workers ready" not in d.log()
    assert "[info]" not in d.log() and "[notice]" not in d.log()
    v = tgrund(api, conf={"log": {"level": "warn"}}, args=["-v"]).wait_ready()
    v.stop()
    assert "[info]" in v.log()


def test_handler_text_cannot_forge_a_log_line(fakeapi, tgrund):
    """A message text logged by the handler stays on its own line: under
    journald a newline would start an entry with any priority it names."""
    api = fakeapi()
    d = tgrund(api, handler="echo_id", conf={"handler": {"log_text": "yes"}},
               env={"JOURNAL_STREAM": "8:12345"}).wait_ready()
    api.push_updates([message(1200, "hi\n<0>master: forged\r\x1b[2J\ttab")])
    wait_echoed(api, 1, 20)
    assert wait_until(lambda: "echo_id: text:" in d.log(), 10), d.log()
    d.stop()
    lines = d.log().splitlines()
    assert not [l for l in lines if "forged" in l and not l.startswith("<4>worker ")], lines
    assert not [l for l in lines if not re.match(r"^<[3-7]>(master|worker \d+): ", l)], lines
    line = [l for l in lines if "echo_id: text:" in l][0]
    assert line.endswith("echo_id: text: hi\\n<0>master: forged\\r\\x1b[2J\\ttab"), line
