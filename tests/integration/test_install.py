"""make install puts every piece where the docs say, and make demo works."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import BUILD  # noqa: E402
from conftest import SANITIZED  # noqa: E402


def test_make_install_layout(tmp_path):
    dest = str(tmp_path / "dest")
    # The build under test is installed as it is (-o build-all: nothing is rebuilt).
    cmd = ["make", "-s", "-o", "build-all", "install", "DESTDIR=" + dest, "PREFIX=/usr",
           "B=" + BUILD] + (["SANITIZE=1"] if SANITIZED else [])
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    want = ["usr/bin/tgrund", "usr/bin/tgrunctl", "usr/libexec/tgrun/tgrun-worker",
            "usr/include/tgrun.h", "usr/lib/pkgconfig/tgrun.pc",
            "usr/lib/systemd/system/tgrun@.service", "etc/tgrun/example.conf.sample",
            "usr/lib/tgrun/handlers/echo.so", "usr/lib/tgrun/handlers/all.so",
            "usr/lib/tgrun/handlers/lua.so", "usr/share/man/man3/tgrun-lua.3",
            "usr/share/doc/tgrun/examples/echo.lua",
            "usr/share/doc/tgrun/examples/converter.lua",
            "usr/share/man/man8/tgrund.8", "usr/share/man/man8/tgrunctl.8",
            "usr/share/man/man5/tgrun.conf.5", "usr/share/man/man3/tgrun.3",
            "usr/share/doc/tgrun/README.md"]
    missing = [w for w in want if not os.path.exists(os.path.join(dest, w))]
    assert not missing, missing
    for exe in ["usr/bin/tgrund", "usr/bin/tgrunctl", "usr/libexec/tgrun/tgrun-worker"]:
        assert os.access(os.path.join(dest, exe), os.X_OK)
    unit = open(os.path.join(dest, "usr/lib/systemd/system/tgrun@.service")).read()
    assert "ExecStart=/usr/bin/tgrund -c /etc/tgrun/%i.conf" in unit
    pc = open(os.path.join(dest, "usr/lib/pkgconfig/tgrun.pc")).read()
    assert "includedir=/usr/include" in pc and "Requires: jansson" in pc
    # Handlers built as the .pc says probe large frames page by page: none
    # can step over the guard region below a fiber's stack.
    cflags = [line for line in pc.splitlines() if line.startswith("Cflags:")]
    assert cflags and "-fstack-clash-protection" in cflags[0].split(), pc
    # The installed daemon checks a config with an installed example handler.
    conf = tmp_path / "bot.conf"
    conf.write_text("[bot]\ntoken = 1:abc\n[workers]\nhandler = %s\n[journal]\nenabled = no\n"
                    % os.path.join(dest, "usr/lib/tgrun/handlers/echo.so"))
    r = subprocess.run([os.path.join(dest, "usr/bin/tgrund"), "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "configuration and handler are valid" in r.stdout
    # The installed Lua handler compiles the installed Lua example in the check.
    conf.write_text("[bot]\ntoken = 1:abc\n[workers]\nhandler = %s\n[handler]\nscript = %s\n"
                    "[journal]\nenabled = no\n"
                    % (os.path.join(dest, "usr/lib/tgrun/handlers/lua.so"),
                       os.path.join(dest, "usr/share/doc/tgrun/examples/echo.lua")))
    r = subprocess.run([os.path.join(dest, "usr/bin/tgrund"), "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # The man pages render without warnings.
    for page in ["usr/share/man/man8/tgrund.8", "usr/share/man/man5/tgrun.conf.5",
                 "usr/share/man/man3/tgrun-lua.3"]:
        m = subprocess.run(["man", "--warnings", "-l", os.path.join(dest, page)],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, MANPAGER="cat", MANWIDTH="80"))
        assert m.returncode == 0 and "warning" not in m.stderr, m.stderr


def test_demo_runs_and_verifies(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "demo.py"),
                        "--build", BUILD, "--count", "2000", "--timeout", "90"],
                       capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "missing 0, duplicates 0, per-chat order inversions 0" in r.stdout
    assert "demo passed" in r.stdout
