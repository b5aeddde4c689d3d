"""Process bookkeeping for tests: time limits, stop by PID, logs on failure."""
import os
import signal
import subprocess
import time

TEST_TOKEN = "123456789:AAH-test_TOKEN-do-not-log-0123456789"


class Proc:
    """A child process with its stdout/stderr in files under the test's tmp dir."""

    def __init__(self, argv, log_path, env=None, cwd=None):
        self.argv = argv
        self.log_path = log_path
        self.out_path = log_path + ".out"
        self._log = open(log_path, "ab")
        self._out = open(self.out_path, "ab")
        self.p = subprocess.Popen(argv, stdout=self._out, stderr=self._log,
                                  stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after `timeout` seconds. Returns the exit status."""
        self.end(timeout)
        self._log.close()
        self._out.close()
        return self.p.returncode

    def end(self, timeout=10):
        """SIGTERM, then SIGKILL after `timeout` seconds; the logs stay open."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(timeout=10)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, needle, timeout=10):
        """Wait until `needle` appears in the stderr log; return True if it did."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.log():
                return True
            if not self.alive():
                return needle in self.log()
            time.sleep(0.05)
        return False


def live_workers(pids):
    """Those of `pids` that are still tgrun-worker processes (a dead one may
    stay a zombie of whoever adopted it; a reused PID is someone else)."""
    alive = []
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if comm == "tgrun-worker" and stat.rsplit(")", 1)[1].split()[0] != "Z":
            alive.append(pid)
    return alive


class ProcGroup:
    def __init__(self, build, tmp):
        self.build = build
        self.tmp = str(tmp)
        self.items = []

    def add(self, item):
        self.items.append(item)
        return item

    def stop_all(self):
        for item in reversed(self.items):
            try:
                item.stop()
            except Exception as e:  # keep stopping the others
                print("stop failed:", e)

    def logs(self):
        out = []
        for item in self.items:
            # An item of several processes (e.g. a NATS cluster) lists them in .procs.
            for proc in getattr(item, "procs", None) or [getattr(item, "proc", item)]:
                if isinstance(proc, Proc):
                    out.append((" ".join(proc.argv), proc.log()))
        return out

    def dump_logs(self, tail=200):
        for argv, text in self.logs():
            lines = text.splitlines()[-tail:]
            print("----- log of", argv, "-----")
            print("\n".join(lines))

    def check_no_token_in_logs(self):
        secret = TEST_TOKEN.split(":", 1)[1]
        for argv, text in self.logs():
            assert secret not in text, "bot token leaked into the log of " + argv
