"""Shared pytest fixtures: private fake API servers and daemons on loopback."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from procs import ProcGroup  # noqa: E402

BUILD = os.environ.get("TGRUN_BUILD",
                       os.path.join(os.path.dirname(os.path.dirname(HERE)), "build"))


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
