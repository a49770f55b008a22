"""`outboxd send NAME`: which bundle NAME means (a file, its stem, or an invoice id)."""

from __future__ import annotations

import ast
import os
import pwd
import re
import shlex
import subprocess

import pytest
from conftest import OUTBOXD, Env
from helpers import pdf_bytes, ubl_invoice, write
from matching import batch_xml

from daemon.actions.reads import CommandReads
from daemon.actions.send import SendRefused, resolve, send
from daemon.configuration.config_load import load_settings
from daemon.invisible import for_terminal
from daemon.journal import Journal, iso_in
from daemon.loop import unattached
from daemon.loop.release import release_file
from daemon.loop.statelock import LOCK_NAME, hold, release
from daemon.manifest import build_manifest, bundle_id_of
from daemon.watching.scan import candidate_for


@pytest.fixture(autouse=True)
def _rules_off(env: Env) -> None:
    """send's reader loads the e-invoice rules where pre-flight is on (~0.8 s of CPU a
    command that reads; in this process for resolve()), and no test here is about them:
    loaded here, the engine's native thread also made every later command of the run
    spawn its reader instead of forking it (reader_child.may_fork)."""
    env.extra.setdefault("einvoice", {})["preflight"] = "off"


def test_the_stem_of_an_invoice_file_names_its_bundle(env: Env) -> None:
    """`send scan-7` finds scan-7.xml although the invoice inside is INV-9: NAME is the
    same NAME as in NAME.send-anyway."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "scan-7.xml", ubl_invoice("INV-9"))
    assert resolve("scan-7", settings).invoice.name == "scan-7.xml"
    assert resolve("scan-7.xml", settings).invoice.name == "scan-7.xml"
    assert resolve("INV-9", settings).invoice.name == "scan-7.xml"


def test_a_name_as_status_shows_it_with_codes_names_that_file(env: Env) -> None:
    """status and the page show W\\u200b-2.xml (a zero-width space as its code); send of
    that name as shown, or its stem, said "no invoice file" beside the file waiting to
    be released. It now finds that file."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "W\u200b-2.xml", ubl_invoice("W-2"))
    assert resolve("W\\u200b-2.xml", settings).invoice.name == "W\u200b-2.xml"
    assert resolve("W\\u200b-2", settings).invoice.name == "W\u200b-2.xml"


def _argv_in_bash(command: str) -> list[bytes]:
    """The arguments bash gives `outboxd` for `command` as printed, in the C locale."""
    return subprocess.run(["bash", "-c", 'outboxd() { printf "%s\\0" "$@"; }; ' + command],
                          capture_output=True, check=True, timeout=30,
                          env={**os.environ, "LC_ALL": "C"}).stdout.split(b"\0")[:-1]


def test_a_name_fitting_one_file_exactly_and_another_as_shown_is_refused_naming_both(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """A file really named W\\u200b-2.xml (with a backslash) and W<U+200B>-2.xml both show
    as W\\u200b-2.xml in status and on the page; `send 'W\\u200b-2.xml'` released the
    literal one without a word, maybe not the one the helpdesk meant. It now refuses
    (exit 1, no release file), its stem too, names both told apart, and offers for each
    a command that bash hands to send as a name that fits that file alone."""
    from daemon.cli import main
    config = env.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "off"})
    settings = load_settings(config)
    literal, invisible = "W\\u200b-2.xml", "W\u200b-2.xml"
    write(env.outbox / literal, ubl_invoice("W-3"))
    write(env.outbox / invisible, ubl_invoice("W-2"))
    for typed in (literal, "W\\u200b-2"):
        assert main(["send", "-c", str(config), "--without-attachments", typed]) == 1
        err = capsys.readouterr().err
        assert "nothing was released" in err
        assert repr(literal) in err and repr(invisible) in err
    assert sorted(p.name for p in env.outbox.iterdir()) == sorted([literal, invisible])
    picks = err.split("as the shell gives it (", 1)[1].split("), or by an invoice id")[0]
    for pick in picks.split("; "):
        shown, command = pick.split(": ", 1)
        argv = _argv_in_bash(command)
        assert argv[:3] == [b"send", b"--", argv[2]]
        assert resolve(os.fsdecode(argv[2]), settings).invoice.name == ast.literal_eval(shown)
    assert resolve("W-3", settings).invoice.name == literal


def test_the_command_offered_for_a_name_with_a_codes_text_names_it_by_its_path(
        env: Env) -> None:
    """W\\u200b-2.xml, with a backslash, is what another file's name shows as: the command
    send offered, `... -- 'W\\u200b-2.xml'`, would fit both once such a file is there. It
    now names the file by its path in the outbox, which fits it alone."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles",
                                              einvoice={"preflight": "off"}))
    write(env.outbox / "W\\u200b-2.xml", ubl_invoice("W-3"))
    with pytest.raises(SendRefused) as info:
        send("W-3", settings, without_attachments=False)
    offered = for_terminal(str(info.value)).rsplit("send without them: ", 1)[1]
    argv = _argv_in_bash(offered)
    assert argv[:3] == [b"send", b"--without-attachments", b"--"]
    assert os.fsdecode(argv[3]) == str(settings.outbox.path.resolve() / "W\\u200b-2.xml")
    write(env.outbox / "W\u200b-2.xml", ubl_invoice("W-2"))
    assert resolve(os.fsdecode(argv[3]), settings).invoice.name == "W\\u200b-2.xml"


def test_a_stem_shared_by_two_invoice_files_is_refused_naming_both(env: Env) -> None:
    """scan-7.xml and scan-7.pdf: `send scan-7` does not guess; it names both files."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "scan-7.xml", ubl_invoice("INV-9"))
    write(env.outbox / "scan-7.pdf", b"%PDF-1.4\n%%EOF\n")
    with pytest.raises(SendRefused) as info:
        resolve("scan-7", settings)
    assert "scan-7.pdf, scan-7.xml" in str(info.value) and "name the file" in str(info.value)


def test_a_name_that_is_one_files_stem_and_anothers_invoice_id_is_refused(env: Env) -> None:
    """INV-1001.xml holds CN-77 and batch-42.xml holds INV-1001: `send INV-1001` could mean
    either, so it releases neither and names both."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "INV-1001.xml", ubl_invoice("CN-77"))
    write(env.outbox / "batch-42.xml", ubl_invoice("INV-1001"))
    with pytest.raises(SendRefused) as info:
        resolve("INV-1001", settings)
    assert "INV-1001.xml, batch-42.xml" in str(info.value)
    assert resolve("INV-1001.xml", settings).invoice.name == "INV-1001.xml"


def test_send_of_one_invoice_id_of_a_batch_releases_no_other_invoice_unasked(
        env: Env) -> None:
    """A file of several invoices goes out whole. `send B-1 --without-attachments`
    released day.xml, sending B-2 and B-3 without their attachments although B-1 had
    its own; `send B-2` sent B-3 without its time sheet too. Each refuses, releasing
    nothing, and names the others and the command that releases the whole file; an id
    that is the file's only one without attachments is released as asked."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "day" / "B-1" / "a.pdf", pdf_bytes())
    write(env.outbox / "day.xml", batch_xml("B-1", "B-2", "B-3"))
    release = env.outbox / "day.send-anyway"
    with pytest.raises(SendRefused) as info:
        send("B-1", settings, without_attachments=True)
    assert "invoice B-1 has its attachments" in str(info.value)
    assert "B-2, B-3 have none" in str(info.value)
    assert "outboxd send --without-attachments -- day.xml" in str(info.value)
    with pytest.raises(SendRefused) as info:
        send("B-2", settings, without_attachments=True)
    assert "sends B-3 without attachments too" in str(info.value)
    assert not os.path.lexists(release)
    write(env.outbox / "day" / "B-3" / "c.pdf", pdf_bytes())
    assert "released without attachments for B-2" in send("B-2", settings, True)
    assert release.is_file()


def test_send_of_an_invoice_id_that_is_also_its_batchs_stem_releases_no_other_unasked(
        env: Env) -> None:
    """An ERP names a batch after its first invoice: B-1.xml holds B-1, B-2 and B-3.
    `send B-1 --without-attachments` (the invoice a helpdesk was asked about) read B-1 as
    the file's stem and released the whole file, B-2 and B-3 going out without their
    attachments unasked. The id is read as the id: refused, nothing released, the whole
    file's command given with its extension; that command releases it."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "B-1" / "B-1" / "a.pdf", pdf_bytes())
    write(env.outbox / "B-1.xml", batch_xml("B-1", "B-2", "B-3"))
    release = env.outbox / "B-1.send-anyway"
    with pytest.raises(SendRefused) as info:
        send("B-1", settings, without_attachments=True)
    assert "invoice B-1 has its attachments" in str(info.value)
    assert "outboxd send --without-attachments -- B-1.xml" in str(info.value)
    assert not os.path.lexists(release)
    assert "released without attachments for B-2, B-3" in send("B-1.xml", settings, True)
    assert release.is_file()


def test_a_files_full_name_that_is_another_files_invoice_id_is_refused_naming_both(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """B-1.xml is an invoice file, and A.xml holds an invoice whose id is the string
    B-1.xml: `send --without-attachments B-1.xml` released the file B-1.xml without a
    word, maybe not what the helpdesk asked about the invoice meant. It now refuses
    (exit 1, no release file), names both, and gives for each a command that fits it
    alone (the path in the outbox); each of those releases the one it names."""
    from daemon.cli import main
    config = env.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "off"})
    write(env.outbox / "B-1.xml", ubl_invoice("INV-7"))
    write(env.outbox / "A.xml", ubl_invoice("B-1.xml"))
    assert main(["send", "-c", str(config), "--without-attachments", "B-1.xml"]) == 1
    err = capsys.readouterr().err
    assert "invoice file B-1.xml" in err and "in A.xml" in err
    assert "nothing was released" in err
    assert not list(env.outbox.glob("*.send-anyway"))
    offered = re.findall(r"(the file B-1\.xml|A\.xml): (outboxd send -- \S+)", err)
    assert [shown for shown, _ in offered] == ["the file B-1.xml", "A.xml"]
    for (_, command), released in zip(offered, ("B-1", "A"), strict=True):
        argv = _argv_in_bash(command)
        assert argv[:2] == [b"send", b"--"]
        assert main(["send", "-c", str(config), "--without-attachments",
                     os.fsdecode(argv[2])]) == 0
        assert (env.outbox / f"{released}.send-anyway").is_file()
    capsys.readouterr()


def test_a_batchs_full_name_that_is_one_of_its_ids_releases_no_other_unasked(
        env: Env) -> None:
    """B-1.xml holds the invoices B-1.xml and B-2, neither with attachments: `send
    B-1.xml` is the file's name and an id in it. Read as the file it sent B-2 without its
    attachments although the helpdesk may have named the invoice (status lists it). It is
    read as the id, as a stem that is an id is: refused, the whole file's command given
    by its path, which fits the file alone (also where send asks for --without-
    attachments: offered as the name, it was read as the id again); it releases it."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "B-1.xml", batch_xml("B-1.xml", "B-2"))
    release = env.outbox / "B-1.send-anyway"
    with pytest.raises(SendRefused) as info:
        send("B-1.xml", settings, without_attachments=True)
    assert "sends B-2 without attachments too" in str(info.value)
    assert not os.path.lexists(release)
    offered = str(info.value).split("release it by its name: ", 1)[1].split("; nothing")[0]
    with pytest.raises(SendRefused) as info:
        send("B-1.xml", settings, without_attachments=False)
    assert str(info.value).endswith(f"send without them: {offered}")
    argv = _argv_in_bash(offered)
    assert argv[:3] == [b"send", b"--without-attachments", b"--"]
    assert "released without attachments for B-1.xml, B-2" in send(
        os.fsdecode(argv[3]), settings, True)
    assert release.is_file()


def test_send_of_a_batch_by_its_name_releases_every_invoice_without_attachments(
        env: Env) -> None:
    """Named by the file, the release is asked for the whole file: it goes."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "day" / "B-1" / "a.pdf", pdf_bytes())
    write(env.outbox / "day.xml", batch_xml("B-1", "B-2", "B-3"))
    assert "released without attachments for B-2, B-3" in send("day", settings, True)
    assert (env.outbox / "day.send-anyway").is_file()


def test_send_releases_a_file_whose_release_name_is_exactly_the_longest_file_name(
        env: Env) -> None:
    """A release file of exactly 255 bytes can exist, and a clerk can drop it; `send`
    failed with "File name too long" from about 236 bytes on, its temp file being
    `.NAME.send-anyway.PID.tmp`. It now writes the release, and leaves nothing else."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles",
                                              einvoice={"preflight": "off"}))
    name = "ä" * 121 + "x"  # 243 bytes: NAME.send-anyway is 255
    write(env.outbox / f"{name}.xml", ubl_invoice("INV-L1"))
    said = send(f"{name}.xml", settings, without_attachments=True)
    assert said.startswith(f"{name}.xml: released without attachments for INV-L1")
    assert sorted(p.name for p in env.outbox.iterdir()) == [f"{name}.send-anyway",
                                                            f"{name}.xml"]


def test_send_of_a_name_too_long_for_its_release_file_says_to_rename_it(env: Env) -> None:
    """One byte more and no release file can exist: `send` failed with an OSError
    ("File name too long … check that the path exists") although the status page sent
    the administrator to it. It refuses, naming the invoice ids without attachments,
    why, and by how many characters to shorten the name; it writes nothing."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles",
                                              einvoice={"preflight": "off"}))
    name = "ä" * 121 + "xyz"  # 245 bytes: NAME.send-anyway would be 257
    write(env.outbox / f"{name}.xml", ubl_invoice("INV-L2"))
    for flag in (True, False):
        with pytest.raises(SendRefused) as info:
            send(name, settings, without_attachments=flag)
        assert str(info.value) == (
            f"{name}.xml: invoice(s) INV-L2 have no attachments — add them (outboxd "
            "attach); it cannot be released without them under this name: its release file "
            f"{name}.send-anyway would be longer than a file name may be (255 bytes) — "
            "rename the invoice file (and its folder, if it has one) to a name at least 2 "
            "characters shorter, then release it")
    assert [p.name for p in env.outbox.iterdir()] == [f"{name}.xml"]


@pytest.mark.parametrize("name", ["Rechnung Oktober.xml", "-5001.xml", "O'Brien & Co.xml"])
def test_the_command_a_refusal_offers_works_when_pasted_into_a_shell(env: Env,
                                                                    name: str) -> None:
    """Without --without-attachments, send names the command that releases the file. It
    was printed as `outboxd send NAME --without-attachments`, which a shell splits at a
    space, reads `-5001.xml` as an option, and breaks at a quote; the command offered
    now parses back to the file's name after `--`."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles",
                                              einvoice={"preflight": "off"}))
    write(env.outbox / name, ubl_invoice("INV-Q1"))
    with pytest.raises(SendRefused) as info:
        send(name, settings, without_attachments=False)
    offered = str(info.value).rsplit("send without them: ", 1)[1]
    assert shlex.split(offered) == ["outboxd", "send", "--without-attachments", "--", name]



def test_send_shows_a_bidi_control_in_a_file_name_escaped_on_the_terminal(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """A clerk's file named `INV\\u202elmx.pdf` (shown by a terminal as INVfdp.xml) or with
    a line separator (U+2028, which ends a line to many viewers) reaches an admin's
    terminal through `outboxd send`, on its answer and on its refusal, as \\u202e and
    \\u2028, never raw. (A name with a C1 control character, U+009B, is a bad name,
    refused as such, and shown escaped too.)"""
    from daemon.cli import main
    config = env.write_config("http://127.0.0.1:9/bundles")
    write(env.outbox / "INV\u202elmx.xml", ubl_invoice("INV-9"))
    write(env.outbox / "b\u2028x.xml", ubl_invoice("INV-9"))
    assert main(["send", "-c", str(config), "INV-9"]) != 0
    err = capsys.readouterr().err
    assert "\u202e" not in err and "\u2028" not in err
    assert "INV\\u202elmx.xml" in err and "b\\u2028x.xml" in err
    (env.outbox / "b\u2028x.xml").unlink()
    (env.outbox / "INV\u202elmx").mkdir()
    write(env.outbox / "INV\u202elmx" / "a.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n")
    main(["send", "-c", str(config), "INV-9"])
    captured = capsys.readouterr()
    assert "\u202e" not in captured.out + captured.err
    assert "INV\\u202elmx.xml" in captured.out + captured.err


def test_send_says_when_no_daemon_runs_to_send_the_release(env: Env) -> None:
    """With the service stopped, `send` said "a running daemon sends it now", and a
    helpdesk waited for an invoice that was not moving. It now asks the state dir's lock:
    stopped, it says the invoice goes out only once outboxd starts; running, that it goes
    now."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles",
                                              einvoice={"preflight": "off"}))
    env.state.mkdir(exist_ok=True)
    (env.state / LOCK_NAME).write_text("4242\n")  # left by a daemon that stopped
    write(env.outbox / "INV-S1.xml", ubl_invoice("INV-S1"))
    said = send("INV-S1", settings, without_attachments=True)
    # Several hosts may watch one outbox: the lock is this host's only, so the answer
    # leaves room for another host's daemon (it said "sent only once outboxd starts").
    assert said == ("INV-S1.xml: released without attachments for INV-S1; but no outboxd "
                    f"is running on this host with the state dir {env.state}, so it is sent "
                    "once outboxd starts (systemctl start outboxd), or by an outboxd on "
                    "another host that watches this outbox")
    write(env.outbox / "INV-S2.xml", ubl_invoice("INV-S2"))
    hold(env.state)
    try:
        said = send("INV-S2", settings, without_attachments=True)
    finally:
        release(env.state)
    assert said == ("INV-S2.xml: released without attachments for INV-S2; the running "
                    "daemon sends it now")


def test_send_of_a_bundle_that_left_the_outbox_says_what_became_of_it(env: Env) -> None:
    """`send INV-1` for an invoice already sent (or quarantined, or being delivered) said
    only "no invoice file or invoice id 'INV-1'", and a helpdesk looked for a lost
    invoice. The refusal now adds what the journal knows: sent, and where; quarantined,
    and the retry command; in delivery, and since when."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles",
                                              einvoice={"preflight": "off"}))
    env.state.mkdir(exist_ok=True)
    j = Journal(env.state / "journal.sqlite3")
    # Sent an hour ago: `send` looks among the last 7 days' rows, so a fixed date made
    # this test fail from a week after it (2026-12-08).
    sent_at = iso_in(-3600)
    day = sent_at[:10]
    j.create("INV-1.xml", "sent", since=sent_at, bundle_id="a" * 64,
             invoice_ids=["INV-1"], archive_dir=str(env.sent / day / "INV-1--a"))
    j.create("batch-3.xml", "quarantined", bundle_id="b" * 64, invoice_ids=["INV-31"],
             archive_dir="/q/batch-3--b")
    j.create("INV-7.xml", "retrying", since="2026-12-01T11:00:00.000Z",
             invoice_ids=["INV-7"])
    j.close()
    with pytest.raises(SendRefused) as info:
        send("INV-1", settings, without_attachments=True)
    assert str(info.value) == (
        f"no invoice file or invoice id 'INV-1' in {env.outbox}: INV-1.xml was sent at "
        f"{sent_at} ({env.sent}/{day}/INV-1--a); nothing to release")
    with pytest.raises(SendRefused) as info:
        send("INV-31", settings, without_attachments=True)
    assert "batch-3.xml was quarantined at" in str(info.value)
    assert "(/q/batch-3--b) — see REASON.txt there; once fixed: outboxd retry bbbbbbbbbbbb" \
        in str(info.value)
    with pytest.raises(SendRefused) as info:
        send("INV-7.xml", settings, without_attachments=True)
    assert str(info.value).endswith(
        ": INV-7.xml left the outbox and is retrying since 2026-12-01T11:00:00.000Z; "
        "nothing to release — outboxd status shows how it goes")
    with pytest.raises(SendRefused) as info:
        send("INV-9", settings, without_attachments=True)
    assert str(info.value).endswith(" — outboxd status lists what waits")


def test_send_of_an_invoice_file_that_is_a_link_says_why_it_is_not_sent(env: Env) -> None:
    """INV-L.xml in the outbox is a symbolic link: `send INV-L` said "no invoice file
    or invoice id 'INV-L'" beside a file the admin sees there. It now says why outboxd
    leaves it alone (never following a link), and writes nothing."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles",
                                              einvoice={"preflight": "off"}))
    target = write(env.root / "elsewhere.xml", ubl_invoice("INV-L"))
    (env.outbox / "INV-L.xml").symlink_to(target)
    for name in ("INV-L", "INV-L.xml"):
        with pytest.raises(SendRefused) as info:
            send(name, settings, without_attachments=True)
        assert str(info.value).startswith(
            "INV-L.xml: is a symbolic link, not a regular file; outboxd never follows or "
            "opens it")
        assert str(info.value).endswith("; nothing was released")
    assert [p.name for p in env.outbox.iterdir()] == ["INV-L.xml"]


@pytest.mark.parametrize("target", ["b\x9b31m.xml", "b\x9b31m", "b\\x9b31m.xml"])
def test_send_of_an_invoice_file_refused_for_its_name_says_so_and_the_fix(
        env: Env, target: str) -> None:
    """b\\x9b31m.xml (a C1 control character: bad-name) in the outbox: `outboxd send` by
    its name, its stem, or its name as outboxd shows it said "no invoice file or
    invoice id … in outbox" beside a file the admin sees there. It now says the file is
    there but refused for its name, and to rename it; exit 1, nothing written."""
    env.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "off"})
    write(env.outbox / "b\x9b31m.xml", ubl_invoice("INV-C1"))
    done = subprocess.run([*OUTBOXD, "send", "-c", str(env.config), "--without-attachments",
                           "--", target], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "no invoice file" not in done.stderr
    assert "b\\x9b31m.xml: the name holds a control character (\\x9b) — rename the file; " \
        "nothing was released" in done.stderr
    assert [p.name for p in env.outbox.iterdir()] == ["b\x9b31m.xml"]


def test_send_under_marker_completion_says_the_bundle_still_waits_for_its_marker(
        env: Env) -> None:
    """[outbox] completion = "marker" and no INV-M.ready yet: `send --without-attachments`
    said "sends it now", and the bundle stayed where it was. The release is written, and
    the answer says it still waits for its marker and how to give it one; with the
    marker there it says nothing of it."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles",
                                              outbox={"completion": "marker"},
                                              einvoice={"preflight": "off"}))
    write(env.outbox / "INV-M.xml", ubl_invoice("INV-M"))
    said = send("INV-M", settings, without_attachments=True)
    assert said == ("INV-M.xml: released without attachments for INV-M; it still waits "
                    "for its marker file INV-M.ready ([outbox] completion = \"marker\"): "
                    "the sender puts it there once the bundle is complete — if it is, "
                    "create that empty file")
    assert (env.outbox / "INV-M.send-anyway").is_file()
    write(env.outbox / "INV-N.xml", ubl_invoice("INV-N"))
    write(env.outbox / "INV-N.ready", b"")
    said = send("INV-N", settings, without_attachments=True)
    assert said.startswith("INV-N.xml: released without attachments for INV-N; ")
    assert "marker" not in said


def test_send_of_a_waiting_invoice_deleted_while_the_daemon_was_stopped_says_so(
        env: Env) -> None:
    """INV-W.xml waited for attachments, then was deleted while outboxd was stopped: the
    journal still has it as waiting. `send INV-W` said it "left the outbox and is
    waiting" — both cannot be. It now says the file was deleted or moved while outboxd
    was stopped, that the journal lists it as waiting until the daemon looks, and that
    nothing was released (no release file is written)."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles",
                                              einvoice={"preflight": "off"}))
    env.state.mkdir(exist_ok=True)
    (env.state / LOCK_NAME).write_text("4242\n")  # left by a daemon that stopped
    j = Journal(env.state / "journal.sqlite3")
    j.create("INV-W.xml", "waiting", since="2026-12-01T09:00:00.000Z",
             invoice_ids=["INV-W"], unattached_ids=["INV-W"])
    j.close()
    for name in ("INV-W", "INV-W.xml"):
        with pytest.raises(SendRefused) as info:
            send(name, settings, without_attachments=True)
        assert str(info.value) == (
            f"no invoice file or invoice id {name!r} in {env.outbox}: INV-W.xml was deleted "
            "or moved while outboxd was stopped; the journal still lists it as waiting "
            "(since 2026-12-01T09:00:00.000Z) until outboxd starts and looks; nothing was "
            "released")
    hold(env.state)
    try:
        with pytest.raises(SendRefused) as info:
            send("INV-W", settings, without_attachments=True)
    finally:
        release(env.state)
    assert "INV-W.xml was deleted or moved away, unseen yet by the running daemon; the " \
        "journal still lists it as waiting (since 2026-12-01T09:00:00.000Z) until its " \
        "next rescan; nothing was released" in str(info.value)
    assert "left the outbox" not in str(info.value)
    assert sorted(p.name for p in env.outbox.iterdir()) == []


@pytest.mark.parametrize("name", ["INV-zw\u200b1.xml", "INV-bidi\u202elmx.pdf.xml",
                                  "INV-ls\u2028it's\\x41.xml",
                                  "Åsa 👨\u200d👩\u200d👧.xml"])
def test_the_command_offered_for_a_name_shown_with_codes_releases_that_file_in_bash(
        env: Env, name: str) -> None:
    """A name with an invisible or control character is shown with its code (U+200B as
    \\u200b); the command send offered quoted it so, '…\\u200b…', which names another
    file, with a backslash in it. As printed (for_terminal), it now gives bash the
    exact name back: in $'…', each such character as its bytes, which bash reads in any
    locale (here C, as a shell of a bare server may run in)."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles",
                                              einvoice={"preflight": "off"}))
    write(env.outbox / name, ubl_invoice("INV-Q2"))
    with pytest.raises(SendRefused) as info:
        send(name, settings, without_attachments=False)
    printed = for_terminal(str(info.value))
    offered = printed.rsplit("send without them: ", 1)[1]
    argv = subprocess.run(["bash", "-c", 'outboxd() { printf "%s\\0" "$@"; }; ' + offered],
                          capture_output=True, check=True, timeout=30,
                          env={**os.environ, "LC_ALL": "C"}).stdout.split(b"\0")
    assert argv[:-1] == [b"send", b"--without-attachments", b"--", os.fsencode(name)]


def test_a_release_this_user_may_not_write_names_the_release_file_and_whom_to_run_as(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run by a user who may not write in the outbox, send said "Permission denied
    (/…/.INV-S3.send-anyway.0a1b2c3.tmp) — check that the path exists…": a temporary name
    the admin cannot find, and not the fix the other commands give. It now names the
    release file and says to run it as the daemon's user; nothing is left behind."""
    import daemon.loop.release as release_module
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "INV-S3.xml", ubl_invoice("INV-S3"))

    def refused(path: os.PathLike[str]) -> int:
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(release_module, "create_locked", refused)
    with pytest.raises(SendRefused) as refusal:
        send("INV-S3", settings, without_attachments=True)
    assert str(refusal.value) == (
        f"could not put the release file INV-S3.send-anyway into the outbox {env.outbox}: "
        "Permission denied — run it as the daemon's user (sudo -u outboxd outboxd send …) "
        "or as root, or as a member of the outbox's group; nothing was changed")
    assert sorted(p.name for p in env.outbox.iterdir()) == ["INV-S3.xml"]


def test_send_refuses_a_bundle_with_errors_and_writes_no_release(env: Env) -> None:
    """A release sends invoices that lack attachments, never a bundle the daemon would
    hold: one with an error is refused with the file and the message, and no release
    file is written, even with --without-attachments."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "B-1.xml", batch_xml("B-1", "B-2"))
    write(env.outbox / "B-1" / "B-1" / "a.pdf", b"not a PDF at all")
    with pytest.raises(SendRefused) as refused:
        send("B-1.xml", settings, without_attachments=True)
    assert str(refused.value).startswith("B-1.xml has errors, so it cannot be released: "
                                         "B-1/B-1/a.pdf: content is a plain text file, "
                                         "not a PDF")
    assert not (env.outbox / "B-1.send-anyway").exists()


def test_send_of_a_bundle_with_every_attachment_says_nothing_to_release(env: Env) -> None:
    """A bundle that has attachments for every invoice needs no release: send says so,
    and writes no release file (one left behind would release a later file of that
    name without its attachments)."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(env.outbox / "INV-A1.xml", ubl_invoice("INV-A1"))
    write(env.outbox / "INV-A1" / "a.pdf", pdf_bytes())
    for without in (False, True):
        assert send("INV-A1", settings, without) == (
            "INV-A1.xml: every invoice has attachments; nothing to release — it goes out "
            "once its files have settled")
    assert not (env.outbox / "INV-A1.send-anyway").exists()


def test_send_of_a_name_typed_with_a_code_answers_for_that_file_not_one_shown_alike(
        env: Env) -> None:
    """A symbolic link named X\\u202e.xml (the six characters typed) and a FIFO named
    X + U+202E + .xml, both refused and both shown as X\\u202e.xml: `send` of the typed
    name (or its stem) says why the link is left alone, `send` of the name with U+202E
    why the FIFO is. Looked up as shown, the typed name got the FIFO's refusal."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    (env.outbox / "X\\u202e.xml").symlink_to(env.root / "elsewhere.xml")
    os.mkfifo(env.outbox / "X\u202e.xml")
    for target, kind in (("X\\u202e.xml", "symbolic link"), ("X\\u202e", "symbolic link"),
                         ("X\u202e.xml", "FIFO"), ("X\u202e", "FIFO")):
        with pytest.raises(SendRefused) as info:
            send(target, settings, without_attachments=True)
        assert str(info.value).startswith(f"X\\u202e.xml: is a {kind}, not a regular "
                                          "file;"), target
        assert str(info.value).endswith("; nothing was released")
    assert sorted(p.name for p in env.outbox.iterdir()) == ["X\\u202e.xml", "X\u202e.xml"]


def test_send_of_a_shown_name_two_refused_files_share_names_each_as_python_writes_it(
        env: Env) -> None:
    """A\\x85\\\\x85.xml and A\\\\x85\\x85.xml (a C1 character and the same code typed, in
    either order) are both refused (bad-name) and both shown as A\\x85\\x85.xml. `send`
    of that shown text is neither's exact name: it answers for both, each named as
    Python writes it so that the two read apart, and releases nothing."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    names = ("A\x85\\x85.xml", "A\\x85\x85.xml")
    for name in names:
        write(env.outbox / name, ubl_invoice("A-1"))
    with pytest.raises(SendRefused) as info:
        send("A\\x85\\x85.xml", settings, without_attachments=True)
    said = str(info.value)
    assert all(f"{n!r}: the name holds a control character" in said for n in names), said
    assert said.endswith("; nothing was released")
    assert sorted(p.name for p in env.outbox.iterdir()) == sorted(names)


@pytest.mark.parametrize("first", ["send", "clerk"])
def test_a_bundle_released_already_is_said_so_and_its_release_file_kept(
        env: Env, capsys: pytest.CaptureFixture[str], first: str) -> None:
    """`outboxd send --without-attachments` of a bundle already released (by an earlier
    send, an ERP's retry of it, or a clerk's own W-1.send-anyway): exit 0, "already
    released" and who sends it — not "released" again — and the release file there is
    left as it is, never replaced."""
    from daemon.cli import main
    config = env.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "off"})
    write(env.outbox / "W-1.xml", ubl_invoice("W-1"))
    release_file = env.outbox / "W-1.send-anyway"
    if first == "send":
        assert main(["send", "-c", str(config), "--without-attachments", "W-1"]) == 0
        assert "released without attachments for W-1" in capsys.readouterr().out
    else:
        release_file.write_text("my own note\n")
    before = release_file.read_bytes(), release_file.stat().st_ino
    assert main(["send", "-c", str(config), "--without-attachments", "W-1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("W-1.xml: already released; a running daemon sends it now"), out
    assert (release_file.read_bytes(), release_file.stat().st_ino) == before
    assert sorted(p.name for p in env.outbox.iterdir()) == ["W-1.send-anyway", "W-1.xml"]


def test_a_release_file_the_share_fails_to_take_says_so_with_the_fix_and_changes_nothing(
        env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The share failing as the release file is written (an I/O error of the file server):
    exit 1, one line naming the release file the clerk knows, the system's words and what
    to do (check the outbox's file system, then send again), nothing released."""
    import errno

    from daemon.actions import send as send_mod
    from daemon.cli import main
    config = env.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "off"})
    write(env.outbox / "W-1.xml", ubl_invoice("W-1"))

    def share_fails(*_: object) -> bool:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(env.outbox / ".W-1.tmp"))
    monkeypatch.setattr(send_mod, "write_release", share_fails)
    assert main(["send", "-c", str(config), "--without-attachments", "W-1"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == (f"outboxd: could not put the release file W-1.send-anyway into the outbox "
                    f"{env.outbox}: Input/output error — check the outbox's file system, then "
                    "send again; nothing was changed")
    assert sorted(p.name for p in env.outbox.iterdir()) == ["W-1.xml"]


def test_send_by_a_path_through_an_outbox_configured_as_a_link_releases_that_file(
        env: Env, tmp_path) -> None:
    """[outbox] path may be a link (to a share's mount point, say). `send` given the path
    of a waiting invoice file as the configuration spells it (OUTBOX/W-1.xml, the link's
    path) releases it, as by the folder the link leads to or by its name: it said "no
    invoice file … in OUTBOX" beside the very file waiting there (exit 1)."""
    real = tmp_path / "share" / "outbox"
    real.parent.mkdir()
    env.outbox.rename(real)
    env.outbox.symlink_to(real)
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles"))
    write(real / "W-1.xml", ubl_invoice("W-1"))
    for given in (env.outbox / "W-1.xml", real / "W-1.xml"):
        assert resolve(str(given), settings).invoice.name == "W-1.xml"
    said = send(str(env.outbox / "W-1.xml"), settings, without_attachments=True)
    assert said.startswith("W-1.xml: released without attachments for W-1")
    assert (real / "W-1.send-anyway").is_file()


def test_a_release_by_send_names_who_ran_it_and_leaves_the_bundle_id_as_it_was(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sudo -u outboxd outboxd send NAME --without-attachments` run by anna: the
    manifest's unattached-invoice warning said "released by outboxd send", naming no
    one, where a clerk's release file names its owner. It now says "(run by anna as
    outboxd)", the file's owner beside the person sudo names; the
    warning is no part of the bundle id, which stays what it was unreleased."""
    settings = load_settings(env.write_config("http://127.0.0.1:9/bundles",
                                              policy={"unattached": "hold"}))
    write(env.outbox / "INV-7.xml", ubl_invoice("INV-7"))
    monkeypatch.setenv("SUDO_USER", "anna")
    assert "released without attachments for INV-7" in send("INV-7", settings, True)
    cand = candidate_for(settings.outbox, "INV-7.xml")
    with CommandReads(settings) as reads:
        bundle = reads.evaluate(cand, settings)
    rule = unattached.plan(bundle, cand, settings, release_file(cand, settings.share))
    assert rule is not None and rule.by_release
    [warning] = rule.findings()
    me = pwd.getpwuid(os.geteuid()).pw_name  # who the release file belongs to
    assert warning.message == ("invoice INV-7 is sent without attachments (released by "
                               f"outboxd send (run by anna as {me}))")
    manifest = build_manifest(bundle, warnings=[warning])
    assert manifest["warnings"][0]["message"] == warning.message
    assert manifest["bundle_id"] == bundle_id_of(bundle)


@pytest.mark.parametrize(("err", "words"), [
    ("EIO", "W-1/scan.pdf could not be read just now (Input/output error) — is the share "
     "still mounted? Check it, then run outboxd send again; nothing was released"),
    ("ENOENT", "W-1/scan.pdf could not be read just now (No such file or directory) — it "
     "changed while it was read, or the share lost it for a moment; run outboxd send "
     "again; nothing was released"),
    ("EACCES", "W-1/scan.pdf cannot be read (Permission denied) — check that outboxd's "
     "user, and the user running send, may read the file and open its folder; nothing "
     "was released"),
])
def test_a_read_the_system_refuses_names_the_file_with_the_fix_not_the_raw_errno(
        env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        err: str, words: str) -> None:
    """A read of the bundle the system refuses (the share's EIO, a file gone at its open,
    a refusal): exit 1, one line naming the file that failed by its path in the outbox,
    what the system said and what to do, as check says it; nothing released. It printed
    "W-1.xml cannot be read: [Errno 2] No such file or directory: '/srv/…'"."""
    import errno

    from daemon.cli import main
    config = env.write_config("http://127.0.0.1:9/bundles", einvoice={"preflight": "off"})
    write(env.outbox / "W-1.xml", ubl_invoice("W-1"))
    code = getattr(errno, err)

    def refused(*_: object) -> None:
        raise OSError(code, os.strerror(code), str(env.outbox / "W-1" / "scan.pdf"))
    monkeypatch.setattr(CommandReads, "evaluate", refused)
    assert main(["send", "-c", str(config), "--without-attachments", "W-1"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == f"outboxd: {words}"
    assert sorted(p.name for p in env.outbox.iterdir()) == ["W-1.xml"]
