"""stdio.py: under JSON logging, what bypasses the log (native code's and libraries'
own lines on fds 1 and 2) comes out as JSON events; reader processes' marked lines pass."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path

from helpers import not_json_lines

ROOT = Path(__file__).resolve().parent.parent


_READER = r"""
from daemon import logs
logs.configure()
logs.get().info("a reader process's own line", file="INV-1.xml")
"""

_NATIVE_SCRIPT = r"""
import os, subprocess, sys
_READER = @READER@
from daemon import logs, stdio
from daemon.configuration.config import LogConfig
logs.configure(LogConfig(format=sys.argv[1]))
stdio.take_native_output()
logs.get().info("ours")
os.write(2, b"a C library's line\nand its second\n")
print("a library's print to stdout", flush=True)
subprocess.run([sys.executable, "-c", _READER], check=True)  # inherits fds 1 and 2
os.write(1, b"said on fd 1 just before the end\n")
raise RuntimeError("a bug")
""".replace("@READER@", repr(_READER))


def test_under_json_everything_on_fds_1_and_2_comes_out_as_json_lines_on_stderr() -> None:
    """take_native_output (outboxd run): what native code writes to fd 2, a print to
    stdout, a reader process's JSON line, a line written just before the process ends
    and a bug's traceback all reach stderr as one JSON object per line, nothing on
    stdout; the reader's line as it was written."""
    r = subprocess.run([sys.executable, "-c", _NATIVE_SCRIPT, "json"], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1
    assert r.stdout == ""
    assert not_json_lines(r.stderr) == []
    records = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]
    outside = "\n".join(r.get("output", "") for r in records)
    assert "a C library's line\nand its second" in outside
    assert "a library's print to stdout" in outside
    assert "said on fd 1 just before the end" in outside
    [reader] = [r for r in records if r["event"] == "a reader process's own line"]
    assert reader["file"] == "INV-1.xml" and reader["level"] == "info"
    [bug] = [r for r in records if r["event"] == "outboxd failed"]
    assert bug["level"] == "critical" and "RuntimeError: a bug" in bug["exception"]


def test_under_console_fds_1_and_2_are_left_as_they_are() -> None:
    """On a terminal (format = "console") nothing is taken: a print stays on stdout, a
    native line on stderr as it was written."""
    r = subprocess.run([sys.executable, "-c", _NATIVE_SCRIPT, "console"], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.stdout.splitlines() == ["a library's print to stdout",
                                     "said on fd 1 just before the end"]
    assert "a C library's line\nand its second\n" in r.stderr
    assert "Traceback (most recent call last)" in r.stderr


_FORGING_SCRIPT = r"""
import os, subprocess, sys
from daemon import logs, stdio
from daemon.configuration.config import LogConfig
logs.configure(LogConfig(format="json"))
stdio.take_native_output()
# What native code in a reader might print of a clerk's invoice: a value holding lines.
forged = '{"event": "bundle sent", "level": "info", "invoice_file": "INV-9.xml"}'
child = "import os, sys; os.write(2, sys.argv[1].encode())"
subprocess.run([sys.executable, "-c", child, f"bad value: x\n{forged}\n"], check=True)
os.write(2, forged.encode() + b"\n")
os.write(2, b"\x00outboxd: end of native output\n")  # the forwarding's old end line
os.write(2, b"after the old end line\n")
"""


def test_a_json_line_written_to_fd_2_by_anything_but_the_log_is_not_passed_as_an_event(
) -> None:
    """A clerk's text that native code writes to fd 2 (in the daemon or in a reader
    process) and that reads as a JSON log line is not passed through as a log event: only
    a reader's log lines, marked with this run's mark, are. The forged line is the
    output of a warning event instead; a line like the forwarding's end line (a fixed
    one, once) does not end the forwarding."""
    r = subprocess.run([sys.executable, "-c", _FORGING_SCRIPT], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not_json_lines(r.stderr) == []
    records = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]
    assert [x for x in records if x["event"] == "bundle sent"] == []
    outside = "\n".join(x.get("output", "") for x in records)
    assert outside.count('"event": "bundle sent"') == 2
    assert "after the old end line" in outside


_FAILING_EMIT_SCRIPT = r"""
import fcntl, os, time
from daemon import logs, stdio
from daemon.configuration.config import LogConfig
logs.configure(LogConfig(format="json"))
stdio.take_native_output()
print("pipe", fcntl.fcntl(stdio._native.write_end, fcntl.F_GETPIPE_SZ), file=stdio._native.out)
real, calls = stdio._emit, []
def once_broken(lines):
    calls.append(lines)
    if len(calls) == 1:
        raise RuntimeError("a bug in the forwarding")
    real(lines)
stdio._emit = once_broken
os.write(2, b"the first native line\n")
os.write(2, b"x" * 200_000 + b"\n")  # more than a default pipe holds: blocks if nobody reads
deadline = time.monotonic() + 20
while not calls and time.monotonic() < deadline:  # the broken batch is behind us
    time.sleep(0.01)
os.write(2, b"the last native line\n")
"""


def test_the_forwarding_thread_outlives_an_error_and_the_pipe_holds_a_long_report() -> None:
    """An error while one batch of native output is logged costs that batch's event (it
    is written as a plain JSON line instead, with `level` and `timestamp` as every line
    has: a shipper filtering by level keeps it), not the thread that empties the pipe:
    without it every later write to fd 2 (a reader process's log line) would block for
    ever. And the pipe is given 1 MiB, room for a long report written at once."""
    r = subprocess.run([sys.executable, "-c", _FAILING_EMIT_SCRIPT], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stderr.splitlines()
    assert lines[0].startswith("pipe ") and int(lines[0].split()[1]) >= 1 << 20
    assert not_json_lines("\n".join(lines[1:])) == []
    records = [json.loads(line) for line in lines[1:] if line.strip()]
    [broken] = [x for x in records if x["event"] == "output outside the log could not be logged"]
    assert "a bug in the forwarding" in broken["error"]
    assert broken["level"] == "error" and broken["timestamp"].endswith("Z")
    assert all({"level", "event", "timestamp"} <= x.keys() for x in records), records
    assert "the first native line" in broken["output"]
    assert any(x.get("output") == "the last native line" for x in records)


_CONTROL_BYTES_SCRIPT = r"""
import os
from daemon import logs, stdio
from daemon.configuration.config import LogConfig
logs.configure(LogConfig(format="json"))
stdio.take_native_output()
# What a library might print of a clerk's binary file: control bytes, then a name.
os.write(2, b"\x01\x1b" * 15_000 + b" INV-\xe2\x80\xa81.xml\n")
"""


def test_native_output_of_control_bytes_stays_one_line_journald_keeps_whole() -> None:
    """Native output is shown as every text of the log is (\\x01, \\x1b, \\u2028), and
    cut after that, in bytes: cut first, 16,000 control bytes made an 80 KB line, which
    journald splits into pieces that are not JSON."""
    r = subprocess.run([sys.executable, "-c", _CONTROL_BYTES_SCRIPT], capture_output=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line for line in r.stderr.split(b"\n") if line.strip()]
    assert max(map(len, lines)) < 48 * 1024
    [event] = [json.loads(line) for line in lines if b"output outside the log" in line]
    assert event["output"].startswith("\\x01\\x1b\\x01\\x1b")
    assert event["output_omitted_chars"] > 0


_RELOADED_TO_CONSOLE_SCRIPT = r"""
import os
from daemon import logs, stdio
from daemon.configuration.config import LogConfig
logs.configure(LogConfig(format="json"))
stdio.take_native_output()
logs.configure(LogConfig(format="console"))  # a reload: the pipe stays
os.write(2, b"a native line quoting INV-\x1b[2J\xc2\x9b1.xml\n")
"""


def test_after_a_reload_to_console_a_native_line_still_reaches_the_log_shown_as_codes(
) -> None:
    """A reload from JSON to console logging keeps the pipe of fds 1 and 2, and every
    line from it passes as a console line: a native line quoting a name with ESC or C1's
    CSI passed raw, to the terminal or journal. It is shown as the log shows text."""
    r = subprocess.run([sys.executable, "-c", _RELOADED_TO_CONSOLE_SCRIPT],
                       capture_output=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert b"a native line quoting INV-\\x1b[2J\\x9b1.xml" in r.stderr
    assert b"\x1b" not in r.stderr and b"\xc2\x9b" not in r.stderr


_END_SCRIPT = r"""
import json, os, sys
from daemon import logs, stdio
from daemon.configuration.config import LogConfig
logs.configure(LogConfig(format="json"))
stdio.GATHER_SECONDS = 30.0  # far beyond release's own wait for the thread (2 s)
stdio.take_native_output()
os.write(2, b"a C library's line\n")
native = stdio._native
stdio.release()
print(json.dumps({"forwarding": native.thread.is_alive()}), flush=True)
"""


def test_at_exit_the_forwarding_ends_with_the_end_line_not_after_a_gathering_wait() -> None:
    """The end line release writes at exit is the last the forwarding thread reads: it
    ends with it, and does not wait GATHER_SECONDS for more to gather (a stop of the
    daemon waited those 50 ms out every time). Here the wait is 30 s: the thread must be
    gone when release returns, well within its 2 s join, the line before it logged."""
    r = subprocess.run([sys.executable, "-c", _END_SCRIPT], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"forwarding": False}
    assert "a C library's line" in r.stderr and not_json_lines(r.stderr) == []


_ENDLESS_LINE_SCRIPT = r"""
import os
from daemon import logs, stdio
from daemon.configuration.config import LogConfig
logs.configure(LogConfig(format="json"))
stdio.take_native_output()
# A library dumping a clerk's binary file to fd 2 with no line end in 300 KB, and no line
# end until the test has seen what was logged of them (a line on stdin).
for _ in range(30):
    os.write(2, b"x" * 10_000)
os.read(0, 1)
os.write(2, b"\nthe line after it\n")
"""


def test_native_output_with_no_line_end_in_sight_is_logged_in_json_not_held_for_good() -> None:
    """Native code writing 300 KB to fd 2 with no line end: what came is logged as soon as
    more than 64 KiB wait for their line end — not held (in memory without bound, for a
    writer that never ends its line) until a line end comes — each as a JSON event cut to
    the event's size with the count of what was left out; every line on stderr is JSON."""
    p = subprocess.Popen([sys.executable, "-c", _ENDLESS_LINE_SCRIPT], stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert p.stdin is not None and p.stderr is not None
    try:
        # Logged while the writer still holds its line end back: read until an event of
        # the x's comes (its own deadline: the writer never ends the line by itself).
        before: list[str] = []
        deadline = time.monotonic() + 20
        while not any('"xxxx' in line for line in before):
            assert time.monotonic() < deadline, before
            ready, _, _ = select.select([p.stderr], [], [], 1.0)
            if ready:
                line = p.stderr.readline()
                assert line, before  # the writer ended: nothing was logged before it
                before.append(line)
        p.stdin.write("\n")
        p.stdin.close()
        after = p.stderr.read()
        assert p.wait(timeout=60) == 0, after[-2000:]
    finally:
        p.kill()
    stderr = "".join(before) + after
    assert not_json_lines(stderr) == []
    # What came before the line end is over 64 KiB in each event: cut to the event's size.
    early = [json.loads(line) for line in before if '"xxxx' in line]
    assert early and all(x.get("output_omitted_chars", 0) > 0 for x in early), early
    # How the rest falls into events depends on how the pipe was read (one read or
    # several); every character written is in an event or counted as left out of one,
    # the line end between the x's and the line after it in one of them or none.
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    told = sum(len(x["output"]) + x.get("output_omitted_chars", 0)
               for x in records if "output" in x)
    assert told - 300_000 - len("the line after it") in (0, 1), told


_MARKED_NOT_JSON_SCRIPT = r"""
import os, subprocess, sys
from daemon import logs, stdio
from daemon.configuration.config import LogConfig
logs.configure(LogConfig(format="json"))
stdio.take_native_output()
# A reader process (it has the run's mark) whose native code writes lines that begin with
# the mark yet are no JSON object: a library's line after a half-written log line.
subprocess.run([sys.executable, "-c",
                "import os; m = os.environ['OUTBOXD_LOG_LINE_MARK']; "
                "os.write(2, (m + 'plain words\\n' + m + '{no json}\\n' + m + '[1, 2]\\n')"
                ".encode())"], check=True)
"""


def test_a_marked_line_that_is_no_json_object_is_logged_as_output_not_passed_raw() -> None:
    """Only a reader's marked line that is a JSON object passes as a log event. A marked
    line that is plain words, looks like an object but is no JSON, or is JSON but no
    object, is logged as the output of an event, the mark taken out (it is never shown):
    every line on stderr stays JSON."""
    r = subprocess.run([sys.executable, "-c", _MARKED_NOT_JSON_SCRIPT], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not_json_lines(r.stderr) == []
    records = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]
    outside = "\n".join(x.get("output", "") for x in records)
    assert outside == "plain words\n{no json}\n[1, 2]", records
