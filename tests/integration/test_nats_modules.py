"""The JetStream modules (daemon/store_js.c, daemon/workq.c) against a real nats-server.

One `nats-server -js` on a free loopback port with its store under the test's
tmp dir; build/tests/jetstream (cmocka, tests/unit/jetstream.c) runs its cases
against it: the store conformance cases the SQLite journal passes too, dedup, a batch cut short,
dead letters, purge, JetStream not answering or out of reach, following completions, a 20,000-update replay, and the
work queue's pull, finish, capacity, sharing, publish retries and redelivery.
"""
import os
import shutil
import subprocess

from conftest import BUILD, SANITIZED
from netfront import free_port, wait_accepting
from procs import Proc

# Seconds the cmocka program may take (it takes about 6 s; more under sanitizers).
RUN_TIMEOUT = 240 if SANITIZED else 120


def nats_server_path():
    path = shutil.which("nats-server") or "/usr/sbin/nats-server"
    assert os.access(path, os.X_OK), "nats-server is not installed (make deps installs it)"
    return path


class NatsServer:
    """One JetStream-enabled nats-server on 127.0.0.1, stopped by PID."""

    def __init__(self, tmp):
        self.port = free_port()
        store = os.path.join(str(tmp), "nats-store")
        os.makedirs(store, exist_ok=True)
        self.proc = Proc([nats_server_path(), "-js", "-a", "127.0.0.1",
                          "-p", str(self.port), "-sd", store],
                         os.path.join(str(tmp), "nats-server.log"))
        wait_accepting(self.port, self.proc, what="nats-server")
        self.url = "nats://127.0.0.1:%d" % self.port

    def stop(self):
        return self.proc.stop()


def test_store_js_and_workq_against_nats_server(procs):
    nats = procs.add(NatsServer(procs.tmp))
    env = dict(os.environ, TGRUN_NATS_URL=nats.url)
    try:
        r = subprocess.run([os.path.join(BUILD, "tests", "jetstream")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = (e.output or b"").decode("utf-8", "replace")
        raise AssertionError("build/tests/jetstream ran over %d s:\n%s" % (RUN_TIMEOUT, out))
    out = r.stdout.decode("utf-8", "replace")
    print(out)
    assert r.returncode == 0, "build/tests/jetstream failed:\n" + out
    assert "[  PASSED  ] 18 test(s)." in out
    # The figures the README quotes come from these lines.
    assert "add_batch of 100 updates" in out
    assert "replay of 20000 unfinished updates" in out
