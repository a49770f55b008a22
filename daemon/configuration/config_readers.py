"""How many reader processes this host takes (`[service] reader_processes`), checked where
the configuration is loaded: `config --check`, the start and each reload.

Why a ceiling by the host: the daemon waits until every reader has loaded before it
reports ready, and again at a reload that changes their number, doing nothing else
meanwhile. A reader costs some 0.5 CPU-s to start, 2–2.5 with the e-invoice rules, and
its memory stays taken for the daemon's life (some 64 MB; 330 MB with the rules once it
has read for a while). 64 readers with the rules on 2 cores would keep a reload some 80 s
(past systemd's WatchdogSec=60, which kills the daemon mid-reload) and take 21 GB.
Twice the CPUs this process may run on (or has the time of, by a
cgroup quota) keeps a start or reload to a few seconds on any host, and is as many as
can be busy: the reads are CPU work but for their waits on the share. At most half of
the host's memory goes to the readers. 2 is always allowed
("auto" may start 2 on any host of 2 CPUs or more, whatever its memory).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from daemon.configuration.config import Settings
from daemon.configuration.config_keys import env_origin

MOST = 64  # whatever the host: the key's range (config_sections.ServiceConfig)
ALWAYS = 2  # allowed on any host
PER_CPU = 2
# A reader's memory once it has read for a while (docs/operations.md, section 1): with
# the e-invoice rules, and without (measured: ~63 MB resident after the start).
READER_MB = {True: 330, False: 64}
MEMORY_SHARE = 0.5  # of the host's memory, at most, for the readers


def needs_engine(settings: Settings) -> bool:
    """Whether evaluate() runs e-invoice rules under these settings: pre-flight, or
    ubl-embedded's check of each built document (docs/einvoice.md)."""
    return settings.einvoice.preflight != "off" or settings.delivery.format == "ubl-embedded"


def usable_cpus() -> int:
    """The CPUs this process may run on (systemd's CPUAffinity=, a container's cpuset),
    else all of the host's; fewer where its cgroup's CPU quota (CPUQuota=, docker
    --cpus) gives it less time than that."""
    try:
        cpus = len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = quota_cpus()
    return cpus if quota is None else min(cpus, quota)


# cgroup v2, as systemd 247+ mounts it by default (Debian 12, Ubuntu 22.04, RHEL 9); a
# quota of cgroup v1 (its own files, per controller) is not read.
CGROUP_OF = Path("/proc/self/cgroup")
CGROUPS = Path("/sys/fs/cgroup")


def quota_cpus() -> int | None:
    """The CPUs' worth of time the cgroup quotas of this process allow (its own and each
    parent's cpu.max, the least, rounded up); None where none is set or none can be read."""
    try:
        lines = CGROUP_OF.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    own = next((line[3:] for line in lines if line.startswith("0::/")), None)
    if own is None:
        return None
    least: int | None = None
    folder = CGROUPS / own.lstrip("/")
    while folder.is_relative_to(CGROUPS):
        try:
            quota, period = (folder / "cpu.max").read_text(encoding="ascii").split()
            cpus = max(1, math.ceil(int(quota) / int(period)))
        except (OSError, ValueError, ZeroDivisionError):  # "max", none here, the root's
            pass
        else:
            least = cpus if least is None else min(least, cpus)
        if folder == CGROUPS:
            break
        folder = folder.parent
    return least


def memory_mb() -> int | None:
    """The host's memory in MB; None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (AttributeError, OSError, ValueError):
        return None


def ceiling(engine: bool) -> tuple[int, str]:
    """The most reader processes this host takes, and why, in words for the error line."""
    cpus = usable_cpus()
    most, why = PER_CPU * cpus, f"{PER_CPU} for each CPU outboxd may use, {cpus} here"
    memory = memory_mb()
    if memory is not None:
        fit = int(memory * MEMORY_SHARE) // READER_MB[engine]
        if fit < most:
            rules = "with the e-invoice rules " if engine else ""
            most, why = fit, (f"a reader {rules}takes some {READER_MB[engine]} MB, and at "
                              f"most half of its {memory:,} MB of memory goes to them")
    if most < ALWAYS:
        return ALWAYS, f"{why}; {ALWAYS} are allowed on any host"
    return min(most, MOST), why


def reader_problems(settings: Settings, env: dict[str, dict[str, Any]]) -> list[str]:
    """`[service] reader_processes` over what this host takes: one line naming the key,
    the value, the limit and the fix."""
    n = settings.service.reader_processes
    if n == "auto":
        return []
    engine = needs_engine(settings)
    most, why = ceiling(engine)
    if n <= most:
        return []
    load = "2–2.5 CPU-s each with the e-invoice rules" if engine else "~0.5 CPU-s each"
    return [f"[service] reader_processes{env_origin('service', 'reader_processes', env)} = "
            f"{n}: this host takes at most {most} reader processes ({why}); more would "
            "wait for the CPUs and hold up each start and reload while they load "
            f"({load}) — set reader_processes to {most} or less, or to \"auto\""]
