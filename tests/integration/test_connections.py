"""How calls use connections: a burst opens no more connections than it has
calls in flight at its peak, plus at most 1 per 1,000 calls. The fake server
counts every connection that carries Bot API calls."""
from waits import wait_echoed


def test_burst_reuses_its_connections(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"workers": {"count": 2}})
    d.wait_ready()
    api.push_updates({"count": 6000, "chats": 300, "seed": 3})
    st = wait_echoed(api, api.stats()["expected_echoes"], timeout=120)
    calls = sum(st["calls"].values())
    assert calls >= 5000     # updates without a chat make no call
    peak = st["api_connections_peak"]
    assert 2 <= peak <= 500 + 4   # [limits] concurrency, and the master's
    assert st["api_connections"] <= peak + calls // 1000, (
        st["api_connections"], peak, calls)
    assert d.stop() == 0
