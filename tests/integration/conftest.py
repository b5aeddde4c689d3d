"""Shared pytest fixtures: private fake API servers and daemons on loopback."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from procs import ProcGroup  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("TGRUN_BUILD",
                       os.path.join(ROOT, "build"))
# Built with -fsanitize (make check SANITIZE=1): slower, so some bounds widen.
_FLAGS = os.path.join(BUILD, ".flags")
SANITIZED = os.path.exists(_FLAGS) and "-fsanitize" in open(_FLAGS).read()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def procs(request, tmp_path):
    """Every process a test starts; all stopped by PID at the end, logs shown on failure."""
    group = ProcGroup(BUILD, tmp_path)
    yield group
    group.stop_all()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        group.dump_logs()
    group.check_no_token_in_logs()


@pytest.fixture
def fakeapi(procs):
    """Factory: fakeapi(*args) starts a fake Bot API server and returns it."""
    from fakeapi import FakeApi

    def start(*args, token=None):
        return procs.add(FakeApi(BUILD, procs.tmp, args=args, token=token))
    return start


@pytest.fixture
def tgrund(procs):
    """Factory: tgrund(api, handler=..., conf={...}) starts a daemon against `api`."""
    from daemon import Tgrund

    def start(api, **kw):
        return procs.add(Tgrund(BUILD, procs.tmp, api.url, **kw))
    return start


# --- real TLS and real proxies in front of the fake API (netfront.py) ---------

def _need(*tools):
    """Fail (not skip) the test when a tool netfront needs is not installed."""
    from netfront import missing_tools
    msg = missing_tools(*tools)
    if msg:
        pytest.fail(msg, pytrace=False)


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """make_ca() once per session: .ca_cert, .server_key, .server_cert, and
    .other_ca_cert, .other_server_key, .other_server_cert (an unrelated CA)."""
    _need("openssl")
    from netfront import make_ca
    return make_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def nghttpx(procs, tls_certs):
    """Factory: nghttpx(api, http2=True, other_ca=False) starts a TLS front
    (Nghttpx) for the fake API `api` (or a backend port), with a certificate of
    the test CA, or of the unrelated "other" CA when other_ca=True."""
    _need("nghttpx")
    from netfront import Nghttpx

    def start(api, http2=True, other_ca=False, **kw):
        port = api if isinstance(api, int) else api.port
        if other_ca:
            key, cert = tls_certs.other_server_key, tls_certs.other_server_cert
        else:
            key, cert = tls_certs.server_key, tls_certs.server_cert
        return procs.add(Nghttpx(procs.tmp, port, key, cert, http2=http2, **kw))
    return start


@pytest.fixture
def microsocks(procs):
    """Factory: microsocks(user=None, password=None) starts a SOCKS5 proxy."""
    _need("microsocks")
    from netfront import Microsocks

    def start(user=None, password=None):
        return procs.add(Microsocks(procs.tmp, user, password))
    return start


@pytest.fixture
def tinyproxy(procs):
    """Factory: tinyproxy(user=None, password=None, **kw) starts an HTTP proxy."""
    _need("tinyproxy")
    from netfront import Tinyproxy

    def start(user=None, password=None, **kw):
        return procs.add(Tinyproxy(procs.tmp, user, password, **kw))
    return start


# --- a JetStream cluster of nats-server on loopback (natscluster.py) ----------

@pytest.fixture
def nats_cluster(procs):
    """Factory: nats_cluster(size=3) starts `size` clustered nats-server with
    JetStream, waits for the meta leader and returns the NatsCluster; stopped
    by PID (after the daemons started later) at the end."""
    from natscluster import NatsCluster, missing
    msg = missing()
    if msg:
        pytest.fail(msg, pytrace=False)

    def start(size=3, **kw):
        c = NatsCluster(procs.tmp, size=size, start=False, **kw)
        procs.add(c)
        c.start_all()
        return c
    return start
