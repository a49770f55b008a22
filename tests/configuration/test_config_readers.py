"""How many reader processes this host takes (daemon/configuration/config_readers.py),
through load_settings as `config --check`, a start and a reload meet it. The host is
stood in for (its CPUs, its memory): what is refused must not depend on the machine the
tests run on. (A real `outboxd run` and `config --check` on one CPU:
tests/integration/test_config_errors.py; a reload: tests/loop/test_reload.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import config_file, minimal, problems_of

from daemon.configuration import config_readers
from daemon.configuration.config_load import load_settings

LEAN = '[einvoice]\npreflight = "off"\n'


def host(monkeypatch: pytest.MonkeyPatch, cpus: int, memory_mb: int | None) -> None:
    monkeypatch.setattr(config_readers, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(config_readers, "memory_mb", lambda: memory_mb)


def readers(tmp_path: Path, outbox: Path, n: int | str, extra: str = "") -> Path:
    """A configuration with reader_processes = n; `extra` goes first, into [delivery]
    where it begins with a key."""
    value = f'"{n}"' if isinstance(n, str) else n
    return config_file(tmp_path, minimal(outbox, extra + f"[service]\nreader_processes = "
                                                          f"{value}\n"))


def test_more_readers_than_twice_the_cpus_are_refused_naming_key_value_limit_and_fix(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """64 readers waited for at each start and reload (80 s with the rules on 2 cores,
    past WatchdogSec=60): on a host of 2 CPUs and plenty of memory at most 4 are taken;
    the one line says the key, the value, the limit and why, and what to set."""
    host(monkeypatch, cpus=2, memory_mb=64_000)
    [line] = problems_of(readers(tmp_path, outbox, 64))
    assert line == (
        "[service] reader_processes = 64: this host takes at most 4 reader processes (2 for "
        "each CPU outboxd may use, 2 here); more would wait for the CPUs and hold up each "
        "start and reload while they load (2–2.5 CPU-s each with the e-invoice rules) — set "
        'reader_processes to 4 or less, or to "auto"')
    [line] = problems_of(readers(tmp_path, outbox, 5, LEAN))
    assert line.startswith("[service] reader_processes = 5: this host takes at most 4 ")
    assert "(~0.5 CPU-s each)" in line
    assert load_settings(readers(tmp_path, outbox, 4)).service.reader_processes == 4


def test_with_the_rules_at_most_half_of_the_memory_goes_to_readers(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reader with the e-invoice rules keeps some 330 MB: on 16 CPUs and 2,000 MB,
    3 readers (990 MB) are taken and 4 refused, saying the memory is why; without the
    rules (64 MB a reader) the same host takes 15."""
    host(monkeypatch, cpus=16, memory_mb=2_000)
    assert load_settings(readers(tmp_path, outbox, 3)).service.reader_processes == 3
    [line] = problems_of(readers(tmp_path, outbox, 4))
    assert ("this host takes at most 3 reader processes (a reader with the e-invoice rules "
            "takes some 330 MB, and at most half of its 2,000 MB of memory goes to them)"
            in line)
    assert load_settings(readers(tmp_path, outbox, 15, LEAN)).service.reader_processes == 15
    [line] = problems_of(readers(tmp_path, outbox, 16, LEAN))
    assert "at most 15 reader processes (a reader takes some 64 MB" in line


def test_ubl_embedded_counts_as_the_rules(tmp_path: Path, outbox: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """[delivery] format = "ubl-embedded" loads the rules in every reader even with
    pre-flight off: its readers are counted at 330 MB too."""
    host(monkeypatch, cpus=16, memory_mb=2_000)
    [line] = problems_of(readers(tmp_path, outbox, 4, 'format = "ubl-embedded"\n' + LEAN))
    assert "with the e-invoice rules takes some 330 MB" in line


def test_two_and_auto_are_taken_on_any_host_and_the_environment_is_named(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """"auto" is min(2, CPUs) and 2 is what it may start on any host: both load on one
    CPU with 500 MB; 3 is refused there, the line naming the environment variable that
    set it."""
    host(monkeypatch, cpus=1, memory_mb=500)
    for n in (2, "auto"):
        assert load_settings(readers(tmp_path, outbox, n)).service.reader_processes == n
    [line] = problems_of(readers(tmp_path, outbox, 3))
    assert "takes at most 2 reader processes (" in line and "2 are allowed on any host" in line
    monkeypatch.setenv("OUTBOXD_SERVICE__READER_PROCESSES", "3")
    [line] = problems_of(config_file(tmp_path, minimal(outbox)))
    assert line.startswith("[service] reader_processes (from "
                           "OUTBOXD_SERVICE__READER_PROCESSES) = 3: this host takes at most 2")


def test_a_cgroup_cpu_quota_counts_as_that_many_cpus(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd's CPUQuota=150% on the service (cgroup v2's cpu.max "150000 100000") gives
    it 2 CPUs' worth of time, however many the host has: the least quota of the cgroup
    and its parents counts, rounded up; "max" and a missing file are no quota, nor is a
    process outside cgroup v2."""
    root = tmp_path / "cgroup"
    service = root / "system.slice" / "outboxd.service"
    service.mkdir(parents=True)
    (root / "system.slice" / "cpu.max").write_text("max 100000\n")
    of = tmp_path / "self-cgroup"
    of.write_text("0::/system.slice/outboxd.service\n")
    monkeypatch.setattr(config_readers, "CGROUP_OF", of)
    monkeypatch.setattr(config_readers, "CGROUPS", root)
    assert config_readers.quota_cpus() is None
    (service / "cpu.max").write_text("150000 100000\n")
    assert config_readers.quota_cpus() == 2
    (root / "system.slice" / "cpu.max").write_text("50000 100000\n")
    assert config_readers.quota_cpus() == 1
    monkeypatch.setattr(config_readers.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert config_readers.usable_cpus() == 1
    of.write_text("4:memory:/x\n1:cpu:/\n")  # cgroup v1 only
    assert config_readers.quota_cpus() is None and config_readers.usable_cpus() == 16
