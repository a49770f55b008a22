"""Fuzz the hostile-file path: mutated PDFs, images and XML invoices read, matched and
validated as the daemon's readers do (`daemon.delivery.finish.evaluate`), with an oracle
on every outcome (docs/development.md, "Fuzzing the readers").

    nice -n 10 .venv/bin/python -m bench.fuzz --seed 1 --cases 2000
    .venv/bin/python -m bench.fuzz --seed 1 --cases 300 --kinds tiff,png --channel external-print
    .venv/bin/python -m bench.fuzz --seed 1 --case 137 --save /tmp/fuzz   # one case again

Each case is made from `--seed` and its number alone: a valid seed file (bench/
fuzzseeds.py) of a kind drawn from `--kinds`, mutated one to three times (bench/
fuzzmutate.py), put in a bundle in a temp outbox (an attachment kind: a valid UBL
invoice and the file in its sidecar; `xml` and `pdfinvoice`: the file as the invoice
file, a valid PDF in its sidecar; `toml`: the sidecar's attachments.toml, beside a
valid PDF) and evaluated for a channel drawn from `--channel`
(`convert` is external-print with `convert_images = true`; `embedded` e-invoice with
`[delivery] format = "ubl-embedded"`, whose documents are built and checked then).

The oracle: the outcome is accepted, or findings / an InputError whose every code is on
docs/codes.md and whose file is one of the bundle's — never another exception; no case
over `--slow` seconds (the lesser of wall and CPU time: a case that only waited for a
CPU on busy cores is not slow) plus `--slow-per-mb` a MB of its file (pre-flight of a
large invoice is work in proportion to it, as the daemon's own time limit is) plus
`--slow-per-word` for each word and `--slow-per-byte` for each byte of page content a
PDF invoice's text search let pypdf parse (daemon/reading/pdftext.py lets a file of a
few KB through to millions of words and tens of MB, as it lets a long real invoice:
seconds by design, so only a search slower than what it parsed fails; a case over
`--slow` within that is listed in the summary, slow_by_search); no growth of the
worker's peak memory over `--rss-mb` plus `--rss-per-mb` a MB of its file; a worker
that does not answer in `--timeout` seconds is a hang (killed, started again). Every
`--readers-every`th case is read again through the daemon's real reader pool (one
process, its time limit and its pipe), whose outcome must be the same, and so must
every line it tells the clerk, word for word (a message that differs from read to read
is written into the errors file anew at every read).

Cases run in a worker process (spawned; watched from here, so that a bomb is stopped at
3 GB resident rather than taking the machine). Prints one JSON line per new failure
signature (with the case number to reproduce it), then a JSON summary; exits 1
when anything failed. `--save DIR` writes each failing input there.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fuzzjudge import (
    EXTENSIONS,
    Campaign,
    Case,
    count_searched,
    documented_codes,
    judge,
    said,
)
from bench.fuzzmutate import mutate
from bench.fuzzseeds import INVOICE_KINDS, made

KINDS = ("pdf", "pdfinvoice", "tiff", "png", "jpeg", "gif", "bmp", "webp", "xml", "toml")
CHANNELS = ("e-invoice", "external-print", "original-print", "convert", "embedded")


def make_case(seed: int, number: int, kinds: list[str], channels: list[str],
              seeds: dict[str, list[tuple[str, str, bytes]]]) -> Case:
    rng = random.Random(f"{seed}:{number}")
    kind = rng.choice(kinds)
    channel = rng.choice(channels)
    name, ext, data = rng.choice(seeds[kind])
    other_kind = rng.choice(sorted(seeds))
    other = rng.choice(seeds[other_kind])[2]
    data, names = mutate(kind, data, rng, other)
    return Case(number, kind, name, ext, channel, tuple(names), data)


# ------------------------------------------------------------------------ worker

def _config(work: Path, channel: str, preflight: str, readers: int = 0) -> Path:
    real = {"convert": "external-print", "embedded": "e-invoice"}.get(channel, channel)
    embedded = channel == "embedded" and preflight != "off"  # it needs the engine
    path = work / f"{channel}.toml"
    path.write_text(f'[outbox]\npath = {json.dumps(str(work / "outbox"))}\n'
                    f'[paths]\nstate_dir = {json.dumps(str(work / "state"))}\n'
                    '[delivery]\nurl = "http://127.0.0.1:9/bundles"\n'
                    f'format = "{"ubl-embedded" if embedded else "bundle"}"\n'
                    f'[einvoice]\npreflight = "{preflight}"\n'
                    f'[validation]\nchannel = "{real}"\n'
                    f'convert_images = {"true" if channel == "convert" else "false"}\n'
                    f'[log]\nformat = "json"\nlevel = "error"\n'
                    f"[service]\nreader_processes = {readers}\n")
    return path


def place(outbox: Path, case: Case, invoice: bytes, pdf: bytes) -> str:
    """The case's bundle written into `outbox`; its invoice file's name."""
    stem = f"F{case.number}"
    side = outbox / stem
    side.mkdir(parents=True, exist_ok=True)
    if case.kind in INVOICE_KINDS:
        name = f"{stem}.{EXTENSIONS.get(case.kind, case.ext)}"
        (outbox / name).write_bytes(case.data)
        (side / "ok.pdf").write_bytes(pdf)
    else:
        name = f"{stem}.xml"
        (outbox / name).write_bytes(invoice.replace(b">Snippet1<", f">{stem}<".encode(), 1))
        if case.kind == "toml":
            (side / "attachments.toml").write_bytes(case.data)
            (side / "ok.pdf").write_bytes(pdf)
        else:
            (side / f"att.{case.ext}").write_bytes(case.data)
    return name


def clear(outbox: Path, name: str) -> None:
    import shutil
    (outbox / name).unlink(missing_ok=True)
    shutil.rmtree(outbox / name.rsplit(".", 1)[0], ignore_errors=True)


def quiet() -> None:
    """pypdf's, Pillow's and img2pdf's warnings off stderr: every damaged file has some
    (the daemon's log keeps img2pdf's and Pillow's out too, daemon/logs.py)."""
    import logging
    import warnings
    warnings.simplefilter("ignore")  # the probes turn the ones they act on into errors
    for name in ("pypdf", "PIL", "img2pdf"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def worker(conn: Any, work: str, preflight: str) -> None:
    """Evaluate each case sent down `conn`; answer with what judge() and the clocks say."""
    import resource
    import traceback

    from bench.corpus import invoice_xml
    from bench.fuzzseeds import pdf_one_page
    from daemon.configuration.config_load import load_settings
    from daemon.delivery.finish import evaluate
    from daemon.watching.scan import candidate_for
    quiet()
    searched = count_searched()
    root = Path(work)
    settings = {c: load_settings(_config(root, c, preflight)) for c in CHANNELS}
    outbox, codes = root / "outbox", documented_codes()
    invoice, pdf = invoice_xml("Snippet1"), pdf_one_page()
    for each in settings.values():  # warm up: imports, the e-invoice engine, caches
        warm = Case(-1, "xml", "invoice", "xml", "e-invoice", (), invoice)
        name = place(outbox, warm, invoice, pdf)
        evaluate(candidate_for(each.outbox, name), each)
        clear(outbox, name)
    conn.send("ready")
    while (case := conn.recv()) is not None:
        name = place(outbox, case, invoice, pdf)
        s = settings[case.channel]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        wall, cpu = time.monotonic(), time.process_time()
        searched[:] = [0, 0]
        try:
            result: Any = evaluate(candidate_for(s.outbox, name), s)
        except Exception as exc:  # noqa: BLE001 — judged: this is what the fuzzer looks for
            result = exc
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
        outcome, failure = judge(result, name.rsplit(".", 1)[0], codes)
        tb = "".join(traceback.format_exception(result)) if failure and \
            isinstance(result, BaseException) else None
        clear(outbox, name)
        conn.send((outcome, failure, wall, cpu, grew, tb, tuple(searched), said(result)))


# ------------------------------------------------------------------------ driver

# The worker's resident memory at which a case is stopped: a bomb must never take the
# machine (the e-invoice engine reserves gigabytes of address space, so no RLIMIT_AS).
KILL_MB = 3000.0


def _rss_mb(pid: int) -> float:
    import os
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGESIZE") / 1e6


class Worker:
    def __init__(self, work: Path, preflight: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker, args=(child, str(work), preflight), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(120) or self.conn.recv() != "ready":
            raise RuntimeError("the fuzz worker did not start")

    def run(self, case: Case, timeout: float) -> tuple[Any, ...] | str:
        """The worker's answer, or why there is none (it hung, died or grew too big)."""
        self.conn.send(case)
        deadline = time.monotonic() + timeout
        while not self.conn.poll(0.2):
            if time.monotonic() > deadline:
                return f"hang: no answer in {timeout:g} s"
            if not self.proc.is_alive():
                return f"died: exit {self.proc.exitcode}"
            if (rss := _rss_mb(self.proc.pid or 0)) > KILL_MB:
                return f"memory: killed at {rss:,.0f} MB"
        try:
            answer: tuple[Any, ...] = self.conn.recv()
            return answer
        except EOFError:
            return f"died: exit {self.proc.exitcode}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.join()


def through_readers(readers: Any, settings: Any, work: Path, case: Case,
                    codes: set[str]) -> tuple[str, tuple[str, ...]]:
    """The case's outcome read by the daemon's reader pool, in judge()'s words, and what
    it said (said())."""
    from bench.corpus import invoice_xml
    from bench.fuzzseeds import pdf_one_page
    from daemon.watching.scan import candidate_for
    outbox = work / "outbox"
    name = place(outbox, case, invoice_xml("Snippet1"), pdf_one_page())
    try:
        try:
            result: Any = readers.evaluate(candidate_for(settings.outbox, name), settings)
        except Exception as exc:  # noqa: BLE001 — judged below
            result = exc
        outcome, failure = judge(result, name.rsplit(".", 1)[0], codes)
        return failure or outcome, said(result)
    finally:
        clear(outbox, name)


def run(args: argparse.Namespace) -> Campaign:
    kinds, channels = args.kinds.split(","), args.channel.split(",")
    for k in kinds:
        if k not in KINDS:
            raise SystemExit(f"unknown kind {k!r}: one of {', '.join(KINDS)}")
    for c in channels:
        if c not in CHANNELS:
            raise SystemExit(f"unknown channel {c!r}: one of {', '.join(CHANNELS)}")
    seeds = made()
    quiet()
    camp = Campaign(args.seed, args.slow, args.slow_per_mb, args.slow_per_word,
                    args.slow_per_byte, args.rss_mb, args.save, args.rss_per_mb)
    numbers = [args.case] if args.case is not None else range(args.cases)
    with tempfile.TemporaryDirectory(prefix="outboxd-fuzz-") as tmp:
        work = Path(tmp)
        (work / "outbox").mkdir()
        (work / "readers" / "outbox").mkdir(parents=True)
        w = Worker(work, args.preflight)
        readers, by_channel, codes = None, {}, documented_codes()
        if args.readers_every:
            from daemon.configuration.config_load import load_settings
            from daemon.reading.readers import Readers
            rw = work / "readers"
            by_channel = {c: load_settings(_config(rw, c, args.preflight, 1)) for c in CHANNELS}
            readers = Readers(rw / "state")
            readers.configure(by_channel["e-invoice"])
        try:
            for number in numbers:
                case = make_case(args.seed, number, kinds, channels, seeds)
                answer = w.run(case, args.timeout)
                if isinstance(answer, str):
                    w.stop()
                    camp.outcomes["failed"] += 1
                    camp.fail(f"{answer.split(':')[0]}: {case.kind}", case, why=answer)
                    w = Worker(work, args.preflight)
                    continue
                camp.took(case, *answer[:7])
                if args.verbose:
                    print(json.dumps({**case.label(), "outcome": answer[0],
                                      "wall": round(answer[2], 3)}), flush=True)
                if readers is not None and number % args.readers_every == 0 and \
                        answer[1] is None:
                    seen, words = through_readers(readers, by_channel[case.channel],
                                                  work / "readers", case, codes)
                    camp.outcomes["through readers"] += 1
                    if seen != answer[0]:
                        camp.fail(f"readers differ: {seen}", case, in_process=answer[0])
                    elif words != answer[7]:
                        camp.fail(f"readers said otherwise: {seen}", case,
                                  in_process=answer[7], readers=words)
        finally:
            w.stop()
            if readers is not None:
                readers.stop()
    return camp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1, help="the campaign's seed (default 1)")
    ap.add_argument("--cases", type=int, default=500, help="cases (default 500)")
    ap.add_argument("--case", type=int, help="run only this case number (to reproduce it)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated, of: "
                    + ", ".join(KINDS))
    ap.add_argument("--channel", default=",".join(CHANNELS), help="comma-separated, of: "
                    + ", ".join(CHANNELS))
    ap.add_argument("--preflight", choices=("off", "error"), default="error",
                    help="[einvoice] preflight (default error: the shipped default)")
    ap.add_argument("--slow", type=float, default=2.0, help="seconds (wall) a case may take")
    ap.add_argument("--slow-per-mb", type=float, default=0.5,
                    help="and this much more a MB of the case's file (default 0.5)")
    ap.add_argument("--slow-per-word", type=float, default=4e-6,
                    help="seconds a PDF invoice's text search may add per word of page content "
                    "it parsed (default 4e-6: pdftext.py's ~2 s for a page of 500,000)")
    ap.add_argument("--slow-per-byte", type=float, default=5e-7,
                    help="seconds a PDF invoice's text search may add per byte of page content "
                    "it parsed (default 5e-7: pdftext.py's 0.5 µs a byte of a hexadecimal string)")
    ap.add_argument("--rss-mb", type=float, default=200.0, help="peak memory growth per case")
    ap.add_argument("--rss-per-mb", type=float, default=12.0,
                    help="and this much more a MB of the case's file (default 12: a read's "
                    "memory grows with its file, docs/operations.md)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a hang")
    ap.add_argument("--readers-every", type=int, default=25,
                    help="every Nth case also through the real reader pool (0: never)")
    ap.add_argument("--save", type=Path, help="write each failing input into this folder")
    ap.add_argument("--verbose", action="store_true", help="a JSON line for every case")
    args = ap.parse_args(argv)
    start = time.monotonic()
    camp = run(args)
    print(json.dumps({"summary": {
        "seed": args.seed, "cases": args.cases if args.case is None else 1,
        "kinds": args.kinds, "channels": args.channel, "preflight": args.preflight,
        "seconds": round(time.monotonic() - start, 1),
        "outcomes": dict(camp.outcomes.most_common()),
        "slowest": {"wall": camp.slowest[0], "case": camp.slowest[1]},
        "most_memory": {"grew_mb": camp.most_memory[0], "case": camp.most_memory[1]},
        "slow_by_search": [{"case": n, "wall": w} for n, w in camp.slow_by_search],
        "failures": {sig: {"count": len(n), "first": n[0]} for sig, n in camp.failures.items()},
    }}), flush=True)
    return 1 if camp.failures else 0


if __name__ == "__main__":
    sys.exit(main())
