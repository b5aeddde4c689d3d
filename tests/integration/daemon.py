"""Running a private tgrund against a fake Bot API in a test's temporary directory."""
import json
import os
import subprocess

from procs import Proc, TEST_TOKEN
from waits import wait_until  # noqa: F401 (re-exported)

_counter = [0]


def write_config(path, sections):
    """Write an INI file from {section: {key: value}} (value None = omit)."""
    with open(path, "w") as f:
        for sec, kv in sections.items():
            f.write("[%s]\n" % sec)
            for k, v in kv.items():
                if v is not None:
                    f.write("%s = %s\n" % (k, v))
            f.write("\n")


class Tgrund:
    """A tgrund process. `conf` entries override the test defaults per section."""

    def __init__(self, build, tmp, api_url, handler="echo_id", conf=None,
                 token=TEST_TOKEN, env=None, args=(), start=True):
        _counter[0] += 1
        n = _counter[0]
        self.build = build
        self.tmp = tmp
        self.dir = os.path.join(tmp, "tgrund-%d" % n)
        os.makedirs(self.dir, exist_ok=True)
        self.token_path = os.path.join(self.dir, "token")
        with open(self.token_path, "w") as f:
            f.write(token + "\n")
        os.chmod(self.token_path, 0o600)
        sections = {
            "bot": {"name": "testbot", "token_file": self.token_path,
                    "api_url": api_url},
            "poll": {"timeout": "2s"},
            "workers": {"count": 2,
                        "handler": os.path.join(build, "handlers", handler + ".so")},
            "limits": {"shutdown_timeout": "10s"},
            "journal": {"path": os.path.join(self.dir, "journal.db")},
        }
        for sec, kv in (conf or {}).items():
            sections.setdefault(sec, {}).update(kv)
        self.conf_path = os.path.join(self.dir, "bot.conf")
        write_config(self.conf_path, sections)
        self.env = dict(os.environ)
        self.env.pop("CREDENTIALS_DIRECTORY", None)
        self.env.pop("TGRUN_TOKEN", None)
        self.env.pop("STATE_DIRECTORY", None)
        self.env.pop("JOURNAL_STREAM", None)
        self.env.update(env or {})
        self.args = list(args)
        self.log_path = os.path.join(tmp, "tgrund-%d.log" % n)
        self.proc = None
        if start:
            self.start()

    def start(self):
        argv = [os.path.join(self.build, "tgrund"), "-c", self.conf_path] + self.args
        self.proc = Proc(argv, self.log_path, env=self.env, cwd=self.dir)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, timeout=15):
        assert self.proc.wait_log("workers ready", timeout), \
            "tgrund did not become ready:\n" + self.proc.log()
        return self

    def wait_exit(self, timeout=30):
        return self.proc.wait(timeout)

    def log(self):
        return self.proc.log()

    def ctl(self, *args, as_json=True):
        """`tgrunctl [--json] ARGS...`, which must succeed: its parsed reply, or
        its output as text."""
        args = [str(a) for a in args]
        p = subprocess.run([os.path.join(self.build, "tgrunctl"), "-c", self.conf_path] +
                           (["--json"] if as_json else []) + args, cwd=self.dir,
                           env=self.env, capture_output=True, text=True, timeout=20)
        assert p.returncode == 0, "tgrunctl %s: %d %s%s" % (" ".join(args), p.returncode,
                                                            p.stdout, p.stderr)
        return json.loads(p.stdout) if as_json else p.stdout

    def status(self):
        """`tgrunctl --json status`: its counters (in_flight, done, ...) and state."""
        return self.ctl("status")

    def stop(self, timeout=20):
        return self.proc.stop(timeout) if self.proc else None

    def worker_pids(self):
        """PIDs of this daemon's live children, from /proc."""
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.pid and fields[0] != "Z":
                    pids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
        return sorted(pids)


def run_check(build, tmp, api_url, conf=None, handler="echo_id", timeout=20, **kw):
    """Run tgrund to its end (e.g. a bad config); return (status, log)."""
    d = Tgrund(build, tmp, api_url, handler=handler, conf=conf, start=False, **kw)
    d.start()
    st = d.wait_exit(timeout)
    if st is None:
        d.stop()
        raise AssertionError("tgrund did not exit within %ss:\n%s" % (timeout, d.log()))
    d.proc.stop()
    return st, d.log()

