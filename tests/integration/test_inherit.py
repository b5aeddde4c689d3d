"""Workers inherit nothing of the master's but their socket (the throttle's memory, the done log), and no secret."""
import os
import signal

from procs import TEST_TOKEN
from waits import wait_log, wait_until


def inherited(pid):
    """{fd: target} of a process's descriptors above stderr."""
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        if int(fd) > 2:
            try:
                out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                pass
    return out


def environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return f.read().decode("utf-8", "replace").split("\0")


def cloexec(pid, fd):
    """Whether a process's descriptor is close-on-exec (O_CLOEXEC in fdinfo)."""
    with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
        flags = [l for l in f if l.startswith("flags:")][0].split()[1]
    return bool(int(flags, 8) & 0o2000000)


def check_workers(d, throttle, done_log=True):
    """No worker shares an open file with the master, but the throttle's
    memory and, with the journal, the done log next to it (on fd 5)."""
    pids = d.worker_pids()
    assert pids, "no workers"
    master = set(inherited(d.pid).values())
    done = os.path.join(d.dir, "journal.db.done")
    for pid in pids:
        fds = inherited(pid)
        assert fds.get(3, "").startswith("socket:"), fds
        # What a handler starts inherits none of them.
        for fd in fds:
            assert cloexec(pid, fd), "worker %d: fd %d would cross exec" % (pid, fd)
        if done_log:
            assert fds.pop(5, None) == done, fds
        # anon_inode names (epoll) carry no identity: each process has its own.
        shared = {fd: t for fd, t in fds.items()
                  if t in master and not t.startswith("anon_inode:")}
        if throttle:
            # Handed over on fd 4; the worker maps it and closes the fd.
            with open("/proc/%d/maps" % pid) as f:
                assert "memfd:" in f.read(), "worker %d did not map the throttle" % pid
        # A socketpair's two ends are distinct sockets: the master's end of a
        # worker's socket is not shared. libcurl's sockets and pipes would be.
        assert shared == {}, "worker %d shares %r with the master" % (pid, shared)
        env = environ(pid)
        assert not any(e.startswith(("TGRUN_TOKEN=", "CREDENTIALS_DIRECTORY=")) for e in env)
        assert not any(TEST_TOKEN.split(":", 1)[1] in e for e in env)


def test_workers_get_only_their_socket_and_no_token(fakeapi, tgrund, procs):
    creds = os.path.join(procs.tmp, "creds")
    os.makedirs(creds)
    with open(os.path.join(creds, "token"), "w") as f:
        f.write(TEST_TOKEN + "\n")
    api = fakeapi()
    d = tgrund(api, conf={"poll": {"timeout": "20s"}},
               env={"CREDENTIALS_DIRECTORY": creds, "TGRUN_TOKEN": TEST_TOKEN}).wait_ready()
    # The long poll is open while the workers are (re)started: its socket
    # and libcurl's are in the master then.
    wait_until(lambda: api.stats()["calls"].get("getUpdates", 0) >= 1, 10,
               what="the first getUpdates")
    check_workers(d, throttle=False)
    old = set(d.worker_pids())
    d.proc.signal(signal.SIGHUP)
    wait_log(d.proc, "generation 2", 20)
    wait_until(lambda: set(d.worker_pids()) and not set(d.worker_pids()) & old, 20,
               what="the new generation to replace the old")
    check_workers(d, throttle=False)


def test_throttle_memory_is_the_only_other_descriptor(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"throttle": {"enabled": "yes"}}).wait_ready()
    check_workers(d, throttle=True)


def test_without_a_journal_no_done_log(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"journal": {"enabled": "no"}}).wait_ready()
    check_workers(d, throttle=False, done_log=False)
    for pid in d.worker_pids():
        assert not any(t.endswith(".done") for t in inherited(pid).values())
