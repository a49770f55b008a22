"""SIGHUP's reload (daemon/loop/reload.py), on the `Reloading` part alone: stand-ins for the
loop's index, pipeline and status page record what the reload asks of them; the
configuration files are real, in tmp_path.

(A reload that names the settings waiting for the next start, and a read under way
at a reload, are tested through the whole loop in test_service.py.)"""

from __future__ import annotations

import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from delivery.test_deliver import _one_answer_server, make_bundle
from delivery.test_tls import _certificates

from daemon.configuration import config_readers
from daemon.configuration.config import Settings
from daemon.configuration.config_load import load_settings
from daemon.configuration.deciding import Deciding
from daemon.delivery.deliver import make_deliverer
from daemon.errors import ConfigError
from daemon.loop.reload import (
    JOURNAL_IS_NOT_NEW,
    SAME_CREDENTIALS,
    Reloading,
    sends_as,
    trusts_as,
)
from daemon.manifest import build_manifest
from daemon.watching.index import OutboxIndex
from daemon.watching.scan import candidate_for


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.fields: list[dict[str, Any]] = []
        self.info_fields: list[dict[str, Any]] = []

    def error(self, event: str, **kw: Any) -> None:
        self.lines.append(("error", event))
        self.fields.append(kw)

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append(("warning", event))
        self.fields.append(kw)

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append(("info", event))
        self.info_fields.append(kw)


class Finish:
    """after_reload() answers these rows, and notes what it was asked."""

    def __init__(self, rows: list[int]) -> None:
        self.rows = rows
        self.paused = set(rows)  # as Finisher.paused: their last attempt was paused
        self.asked: list[bool] = []
        self.trust: list[bool] = []

    def after_reload(self, receiver_changed: bool, trust_changed: bool = False) -> list[int]:
        self.asked.append(receiver_changed)
        self.trust.append(trust_changed)
        return self.rows


class Loop(Reloading):
    """What of the service a reload touches, as stand-ins."""

    def __init__(self, settings: Settings, config_path: Path, rows: list[int]) -> None:
        self.settings = settings
        self.config_path = config_path
        self.log = Log()
        self.index = OutboxIndex(settings.outbox, share=settings.share)
        for name in ("A.xml", "B.xml"):
            self.index.add(candidate_for(settings.outbox, name))
        self.pipeline = SimpleNamespace(known={"A.xml": "read"}, finish=Finish(rows),
                                        reconfigure=self._reconfigured)
        self.publish = SimpleNamespace(reconfigure=lambda old, new: None)
        self.deciding = Deciding("host-000000")
        self._make_deliverer = lambda s: f"deliverer for {s.delivery.target}"
        self._reload, self._relist = True, False
        self._sends_as = sends_as(settings)
        self._trusts_as = trusts_as(settings)
        self.reconfigured: list[tuple[Settings, str]] = []
        self.marked: list[str] = []
        self.scheduled: list[tuple[int, float]] = []
        self.rescans = 0

    def _reconfigured(self, settings: Settings, deliverer: str) -> None:
        self.reconfigured.append((settings, deliverer))

    def _start_rules(self, s: Settings) -> None:
        pass

    def _mark(self, key: str) -> None:
        self.marked.append(key)

    def schedule(self, row_id: int, delay: float) -> None:
        self.scheduled.append((row_id, delay))

    def rescan_soon(self) -> None:
        self.rescans += 1


def config(tmp_path: Path, outbox: str = "outbox", target: str = "target",
           duplicates: str = "quarantine") -> Path:
    """A configuration file for the directory transport, its outbox made."""
    (tmp_path / outbox).mkdir(exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(f'[outbox]\npath = "{tmp_path / outbox}"\n'
                    f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[policy]\nduplicates = "{duplicates}"\n'
                    f'[delivery]\ntransport = "directory"\ntarget = "{tmp_path / target}"\n',
                    encoding="utf-8")
    return path


def running(tmp_path: Path, rows: list[int] | None = None) -> Loop:
    path = config(tmp_path)
    return Loop(load_settings(path), path, rows or [])


def test_a_reload_that_moves_the_outbox_is_refused_and_the_old_settings_stay(
        tmp_path: Path) -> None:
    """The outbox (and state_dir) are where the watcher and the journal already are: a
    new file naming another outbox is refused with an error line, the old settings stay
    in force, and nothing is reconfigured or read again."""
    loop = running(tmp_path)
    old = loop.settings
    config(tmp_path, outbox="other-outbox", duplicates="send")
    loop._do_reload()
    assert loop.settings is old
    assert loop.log.lines == [("error", "configuration not reloaded; keeping the old one")]
    [error] = [f["error"] for f in loop.log.fields]
    assert f'[outbox] path = "{tmp_path / "other-outbox"}": a new outbox needs a restart' \
        in error and f'set it back to "{tmp_path / "outbox"}"' in error
    assert "state_dir" not in error
    assert loop.reconfigured == [] and loop.marked == [] and loop.rescans == 0


def test_a_refused_reload_to_another_outbox_or_state_dir_makes_no_folder_there(
        tmp_path: Path) -> None:
    """A reload that would move the outbox or the journal is refused as a whole, so it
    creates nothing for them either: no `.outboxd/processing` in the other outbox, no
    `sent/` or `quarantine/` beside it, no other state dir (an admin who edits the path
    and reloads would otherwise find folders on a share the daemon does not watch)."""
    loop = running(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    path = config(other, outbox="outbox")
    loop.config_path = path
    loop._do_reload()
    assert loop.log.lines == [("error", "configuration not reloaded; keeping the old one")]
    [error] = [f["error"] for f in loop.log.fields]
    assert "[outbox] path" in error and "[paths] state_dir" in error
    assert sorted(p.name for p in other.iterdir()) == ["config.toml", "outbox"]
    assert list((other / "outbox").iterdir()) == []


def test_a_reload_reads_every_bundle_again_and_rescans_at_once(tmp_path: Path) -> None:
    """Patterns, rules and policies may differ after a reload: what was read is forgotten,
    every known bundle is stepped again, the outbox is listed again and the next rescan
    comes at once; the pipeline gets the new settings and a deliverer made from them."""
    loop = running(tmp_path)
    config(tmp_path, duplicates="send")
    loop._do_reload()
    assert loop.settings.policy.duplicates == "send" and not loop._reload
    assert loop.pipeline.known == {}
    assert sorted(loop.marked) == ["A.xml", "B.xml"] and loop._relist and loop.rescans == 1
    assert loop.reconfigured == [(loop.settings, f"deliverer for {tmp_path / 'target'}")]
    assert ("info", "configuration reloaded") in loop.log.lines


def test_only_a_reload_to_another_receiver_counts_as_a_new_receiver(tmp_path: Path) -> None:
    """The rows the finisher names after a reload are tried again at once (delay 0); it is
    told the receiver changed only when the delivery target did, not for any other
    setting."""
    loop = running(tmp_path, rows=[7, 9])
    config(tmp_path, duplicates="send")
    loop._do_reload()
    config(tmp_path, duplicates="send", target="another-target")
    loop._do_reload()
    assert loop.pipeline.finish.asked == [False, True]
    assert loop.scheduled == [(7, 0.0), (9, 0.0), (7, 0.0), (9, 0.0)]


def test_a_reload_that_names_sidecars_otherwise_gives_the_known_bundles_their_new_sidecar(
        tmp_path: Path) -> None:
    """[outbox] sidecar_suffix set by a reload: bundles already known look in (and
    hear events on) A.files/, not A/ any more."""
    loop = running(tmp_path)
    path = config(tmp_path)
    path.write_text(path.read_text().replace("[outbox]\n", '[outbox]\nsidecar_suffix = ".files"\n'),
                    encoding="utf-8")
    loop._do_reload()
    assert loop.index.candidate("A.xml").sidecar.name == "A.files"
    assert loop.index.touched("A.files")[0] == {"A.xml"}


def test_a_reload_whose_rules_cannot_load_closes_the_deliverer_it_made(
        tmp_path: Path) -> None:
    """The new deliverer is made before the e-invoice rules are loaded; when the rules
    fail (a ConfigError), the reload is refused, the old settings stay, and the new
    deliverer is closed rather than left with its connection pool open."""
    made: list[SimpleNamespace] = []

    def deliverer(s: Settings) -> SimpleNamespace:
        made.append(SimpleNamespace(closed=False))
        made[-1].close = lambda: setattr(made[-1], "closed", True)
        return made[-1]

    def broken_rules(s: Settings) -> None:
        raise ConfigError("the e-invoice rules cannot load")
    loop = running(tmp_path)
    old = loop.settings
    loop._make_deliverer = deliverer
    loop._start_rules = broken_rules  # type: ignore[method-assign]
    config(tmp_path, duplicates="send")
    loop._do_reload()
    assert loop.settings is old and loop.reconfigured == []
    assert [d.closed for d in made] == [True]
    assert ("error", "configuration not reloaded; keeping the old one") in loop.log.lines


def test_a_reload_to_more_readers_than_the_host_takes_is_refused_before_any_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """reader_processes = 64 on a host of one CPU: the reload is refused with the line
    naming the key, the value, the limit and the fix, before a reader (or a deliverer) is
    started — the loop is not held up while 64 load — and the old settings stay."""
    monkeypatch.setattr(config_readers, "usable_cpus", lambda: 1)
    started: list[Settings] = []
    loop = running(tmp_path)
    old = loop.settings
    loop._start_rules = started.append  # type: ignore[method-assign]
    path = config(tmp_path)
    path.write_text(path.read_text() + "[service]\nreader_processes = 64\n")
    loop._do_reload()
    assert loop.settings is old and loop.reconfigured == [] and started == []
    assert loop.log.lines == [("error", "configuration not reloaded; keeping the old one")]
    assert ("[service] reader_processes = 64: this host takes at most 2 reader processes "
            "(2 for each CPU outboxd may use, 1 here)") in loop.log.fields[0]["error"]


def test_a_reload_keeps_the_running_concurrency_until_the_next_start(tmp_path: Path) -> None:
    """The delivery threads are started once: a reload that sets another
    [delivery] concurrency says it waits for the next start, and the deliverer it makes
    (whose connection pool is sized by it) and the settings in force keep the running
    value. A file put back to the running value is no longer reported as waiting."""
    loop = running(tmp_path)
    made: list[int] = []
    loop._make_deliverer = lambda s: made.append(s.delivery.concurrency)  # type: ignore[assignment,func-returns-value]
    path = config(tmp_path, duplicates="send")
    path.write_text(path.read_text() + "concurrency = 2\n", encoding="utf-8")
    loop._do_reload()
    assert made == [4] and loop.settings.delivery.concurrency == 4
    assert loop.settings.policy.duplicates == "send"
    assert ("warning", "these settings take effect at the next start") in loop.log.lines
    loop.log.lines.clear()
    config(tmp_path)
    loop._do_reload()
    assert made == [4, 4]
    assert ("warning", "these settings take effect at the next start") not in loop.log.lines
    assert ("info", "configuration reloaded") in loop.log.lines


def test_the_reloads_own_lines_are_in_the_log_format_it_brings(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A reload that switches [log] format (console to json) and sets a value that waits
    for the next start: its warning and "configuration reloaded" come after the new
    format is in place, so that after a switch to json every line is JSON."""
    import daemon.loop.reload
    loop = running(tmp_path)
    loop._make_deliverer = lambda s: None  # type: ignore[assignment,return-value]
    monkeypatch.setattr(daemon.loop.reload.logs, "configure",
                        lambda cfg: loop.log.lines.append(("configure", cfg.format)))
    path = config(tmp_path)
    path.write_text(path.read_text() + 'concurrency = 2\n[log]\nformat = "json"\n',
                    encoding="utf-8")
    loop._do_reload()
    assert loop.log.lines.index(("configure", "json")) < loop.log.lines.index(
        ("warning", "these settings take effect at the next start"))
    assert ("info", "configuration reloaded") in loop.log.lines


def test_a_reload_to_a_url_whose_password_holds_a_raw_hash_is_refused(tmp_path: Path) -> None:
    """A reload to transport "http" with url "http://bob:1234#pw@host/in" (which httpx
    reads as host bob, port 1234) is refused like a start: the old settings stay, and
    the error names [delivery] url and %23 but not the password."""
    loop = running(tmp_path)
    old = loop.settings
    path = config(tmp_path)
    path.write_text(path.read_text().replace(
        'transport = "directory"', 'url = "http://bob:1234#S3cr3tPw@127.0.0.1:9/in"'),
        encoding="utf-8")
    loop._do_reload()
    assert loop.settings is old and loop.reconfigured == []
    assert loop.log.lines == [("error", "configuration not reloaded; keeping the old one")]
    error = loop.log.fields[0]["error"]
    assert "[delivery] url" in error and "%23" in error and "S3cr3tPw" not in error


def test_a_reload_to_a_release_suffix_naming_outboxd_s_own_folder_keeps_the_old_settings(
        tmp_path: Path) -> None:
    """A reload to [share] release_suffix = ".Embedded" (the release file would take the
    name of the folder of ubl-embedded's documents in the work folder) is refused like a
    start: the old settings stay, nothing is read again, and the error names the key."""
    loop = running(tmp_path)
    old = loop.settings
    path = config(tmp_path)
    path.write_text(path.read_text() + '[share]\nrelease_suffix = ".Embedded"\n',
                    encoding="utf-8")
    loop._do_reload()
    assert loop.settings is old and loop.reconfigured == [] and loop.marked == []
    assert loop.log.lines == [("error", "configuration not reloaded; keeping the old one")]
    assert "[share] release_suffix = '.Embedded': the release file (NAME.Embedded)" \
        in loop.log.fields[0]["error"]


def test_a_reload_refused_for_one_folder_makes_none_of_the_others(tmp_path: Path) -> None:
    """A reload that moves [paths] sent to a new folder and [paths] quarantine to one
    that cannot be made is refused as a whole, naming [paths] quarantine and its fix;
    the new sent folder is not made either (an admin would find an empty folder that no
    configuration in force names)."""
    loop = running(tmp_path)
    old = loop.settings
    (tmp_path / "a-file").write_text("not a folder")
    path = config(tmp_path)
    path.write_text(path.read_text().replace(
        "[paths]\n", f'[paths]\nsent = "{tmp_path / "new-sent"}"\n'
                     f'quarantine = "{tmp_path / "a-file" / "quarantine"}"\n'),
        encoding="utf-8")
    loop._do_reload()
    assert loop.settings is old and loop.reconfigured == []
    assert loop.log.lines == [("error", "configuration not reloaded; keeping the old one")]
    [error] = [f["error"] for f in loop.log.fields]
    assert "[paths] quarantine: cannot create" in error \
        and "set [paths] quarantine to another folder" in error
    assert not (tmp_path / "new-sent").exists()


def http_config(tmp_path: Path, token: str) -> Path:
    """A configuration for the http transport whose token is in tmp_path/token (as a
    systemd credential is), the file holding `token`."""
    (tmp_path / "outbox").mkdir(exist_ok=True)
    (tmp_path / "token").write_text(token + "\n", encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(f'[outbox]\npath = "{tmp_path / "outbox"}"\n'
                    f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[delivery]\nurl = "http://127.0.0.1:9/in"\n'
                    f'token_file = "{tmp_path / "token"}"\n', encoding="utf-8")
    return path


def test_a_reload_with_the_same_token_while_deliveries_are_paused_says_so_and_how_to_fix(
        tmp_path: Path) -> None:
    """Two bundles paused by the receiver's 401; the admin reloads, but token_file still
    holds the token in force (a systemd credential is copied only at start). The paused
    bundles are still tried at once, and one warning says that the url and token are the
    same, how many bundles wait, and that a credential needs systemctl restart; neither
    it nor any other line carries the token. A reload that brings a new token, or one
    with nothing paused, says nothing of the kind."""
    path = http_config(tmp_path, "OLD-t0ken-123")
    loop = Loop(load_settings(path), path, rows=[3, 5])
    loop._do_reload()
    assert loop.scheduled == [(3, 0.0), (5, 0.0)]
    assert ("warning", SAME_CREDENTIALS) in loop.log.lines
    [warning] = [f for f in loop.log.fields if "fix" in f]
    assert warning["bundles"] == 2
    assert "/run/credentials" in warning["fix"] and "systemctl restart outboxd" in \
        warning["fix"]
    assert "OLD-t0ken-123" not in repr(loop.log.fields)

    loop.log.lines.clear()
    (tmp_path / "token").write_text("NEW-t0ken-456\n", encoding="utf-8")
    loop._do_reload()
    assert ("info", "configuration reloaded") in loop.log.lines
    assert ("warning", SAME_CREDENTIALS) not in loop.log.lines

    loop.log.lines.clear()
    loop._do_reload()  # the new token is the one in force now: the same again
    assert ("warning", SAME_CREDENTIALS) in loop.log.lines

    loop.log.lines.clear()
    loop.pipeline.finish.paused.clear()
    loop._do_reload()
    assert ("warning", SAME_CREDENTIALS) not in loop.log.lines


def test_a_reload_that_changes_the_duplicate_window_says_it_does_nothing_now(
        tmp_path: Path) -> None:
    """[policy] duplicate_window_days is read only when the journal is new: a reload that
    changes it says so, naming the key, instead of taking it without a word; the same
    value again says nothing."""
    loop = running(tmp_path)
    path = config(tmp_path)
    text = path.read_text().replace("[policy]\n", "[policy]\nduplicate_window_days = 30\n")
    path.write_text(text, encoding="utf-8")
    loop._do_reload()
    assert ("warning", JOURNAL_IS_NOT_NEW) in loop.log.lines
    assert {"settings": ["[policy] duplicate_window_days"]} in loop.log.fields
    assert ("info", "configuration reloaded") in loop.log.lines
    loop.log.lines.clear()
    loop._do_reload()
    assert ("warning", JOURNAL_IS_NOT_NEW) not in loop.log.lines


def test_a_reload_does_not_name_the_duplicate_window_among_what_it_changed(
        tmp_path: Path) -> None:
    """"configuration reloaded" listed [policy] duplicate_window_days as changed, beside
    the warning that the change does nothing now (nor at a restart, unless the journal is
    new): changed names only what the reload put in force."""
    loop = running(tmp_path)
    path = config(tmp_path)
    path.write_text(path.read_text().replace(
        "[policy]\n", "[policy]\nduplicate_window_days = 30\nunattached = \"hold\"\n"),
        encoding="utf-8")
    loop._do_reload()
    assert ("warning", JOURNAL_IS_NOT_NEW) in loop.log.lines
    assert [f["changed"] for f in loop.log.info_fields] == [["[policy] unattached"]]


def test_a_reload_that_spells_out_a_default_folder_names_no_change(tmp_path: Path) -> None:
    """A file that writes out [paths] sent, quarantine or processing as the folders the
    daemon already uses (their defaults, beside and in the outbox) changes nothing: the
    reload listed them as changed. One that names another folder is a change."""
    loop = running(tmp_path)
    path = config(tmp_path)
    outbox = tmp_path / "outbox"
    spelled = path.read_text().replace("[paths]\n", f'[paths]\nsent = "{tmp_path / "sent"}"\n'
                                       f'quarantine = "{tmp_path / "quarantine"}"\n'
                                       f'processing = "{outbox / ".outboxd" / "processing"}"\n')
    path.write_text(spelled, encoding="utf-8")
    loop._do_reload()
    path.write_text(spelled.replace(f'sent = "{tmp_path / "sent"}"',
                                    f'sent = "{tmp_path / "sent2"}"'), encoding="utf-8")
    loop._do_reload()
    assert [f["changed"] for f in loop.log.info_fields] == [[], ["[paths] sent"]]


def test_what_decides_trust_changes_with_verify_and_with_its_file_replaced_in_place(
        tmp_path: Path) -> None:
    """trusts_as: what a reload compares to bring forward bundles whose receiver's
    certificate was not trusted — verify (and client_cert, client_key) and their files:
    the same CA file rewritten at its path is a change too; a reload that changes
    nothing of it is none (each such bundle would only fail its handshake again)."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nA\n", encoding="utf-8")

    def settings(**delivery: object) -> Settings:
        return Settings(outbox={"path": tmp_path}, delivery={
            "url": "https://127.0.0.1:9/b", **delivery})
    before = trusts_as(settings(verify=str(ca)))
    assert trusts_as(settings(verify=str(ca), concurrency=8)) == before
    assert trusts_as(settings()) != before
    replaced = tmp_path / "new.pem"
    replaced.write_text("-----BEGIN CERTIFICATE-----\nB, the operator's new CA\n",
                        encoding="utf-8")
    replaced.replace(ca)
    assert trusts_as(settings(verify=str(ca))) != before


def test_a_reload_that_adds_a_client_certificate_trusts_the_same_cas(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """verify = true, and the receiver signed by a private CA that SSL_CERT_FILE names:
    the deliverer the reload builds once client_cert and client_key are added still
    trusts it (and presents the certificate), as the one in force before did."""
    ca, cert, key, client_cert, client_key = _certificates(tmp_path)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    server.load_cert_chain(str(cert), str(key))
    server.verify_mode = ssl.CERT_OPTIONAL
    peers: list[Any] = []
    with _one_answer_server(lambda h: peers.append(h.connection.getpeercert()), "same-cas",
                            tls=server) as port:
        path = http_config(tmp_path, "t0ken")
        path.write_text(path.read_text(encoding="utf-8").replace(
            "http://127.0.0.1:9/in", f"https://127.0.0.1:{port}/in"), encoding="utf-8")
        loop = Loop(load_settings(path), path, rows=[])
        loop._make_deliverer = lambda s: make_deliverer(s.delivery)
        before = loop._make_deliverer(loop.settings)
        with path.open("a", encoding="utf-8") as f:
            f.write(f'client_cert = "{client_cert}"\nclient_key = "{client_key}"\n')
        loop._do_reload()
        assert ("info", "configuration reloaded") in loop.log.lines
        assert [line for line in loop.log.lines if line[0] == "error"] == []
        receipts = []
        for deliverer in (before, loop.reconfigured[-1][1]):
            bundle = make_bundle(tmp_path / f"work{len(receipts)}")
            try:
                receipts.append(deliverer.deliver(bundle, build_manifest(bundle)).receipt_id)
            finally:
                deliverer.close()
    assert receipts == ["same-cas", "same-cas"]
    assert len(peers) == 2 and not peers[0]
    assert dict(x[0] for x in peers[1]["subject"])["commonName"] == "client"
    assert loop.pipeline.finish.trust == [True]


def test_what_decides_trust_includes_the_ca_file_the_environment_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """verify = true trusts the CAs SSL_CERT_FILE names: that file replaced in place is a
    change of trust for a reload too (the reload's deliverer reads it again), so
    bundles waiting on an untrusted certificate are tried at once."""
    ca = tmp_path / "env-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nA\n", encoding="utf-8")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    settings = Settings(outbox={"path": tmp_path}, delivery={"url": "https://127.0.0.1:9/b"})
    before = trusts_as(settings)
    assert trusts_as(settings) == before
    replaced = tmp_path / "new.pem"
    replaced.write_text("-----BEGIN CERTIFICATE-----\nB, the private CA renewed\n",
                        encoding="utf-8")
    replaced.replace(ca)
    assert trusts_as(settings) != before


@pytest.mark.parametrize("how", ["rewritten", "renamed over"])
def test_what_decides_trust_includes_a_ca_rewritten_in_the_folder_the_environment_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """verify = true and SSL_CERT_DIR naming a folder of CAs (hash links to PEM files, as
    `openssl rehash` makes them): a CA file in it renewed under the same name — written
    over in place, which leaves the folder itself untouched, or renamed over — is a
    change of trust, as for SSL_CERT_FILE; a reload that finds the folder as it was is
    none."""
    cas = tmp_path / "cas"
    cas.mkdir()
    ca = cas / "private-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nA\n", encoding="utf-8")
    (cas / "1a2b3c4d.0").symlink_to("private-ca.pem")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(cas))
    settings = Settings(outbox={"path": tmp_path}, delivery={"url": "https://127.0.0.1:9/b"})
    before = trusts_as(settings)
    assert trusts_as(settings) == before
    renewed = "-----BEGIN CERTIFICATE-----\nB, the private CA renewed\n"
    if how == "rewritten":
        with ca.open("w", encoding="utf-8") as f:
            f.write(renewed)
    else:
        (tmp_path / "new.pem").write_text(renewed, encoding="utf-8")
        (tmp_path / "new.pem").replace(ca)
    assert trusts_as(settings) != before


def test_a_reload_says_whether_it_changed_what_is_trusted(tmp_path: Path) -> None:
    """The reload hands after_reload whether verify (or its file) changed: not for a
    reload of the same file, yes for one that names a CA file."""
    loop = running(tmp_path)
    loop._do_reload()
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    with loop.config_path.open("a", encoding="utf-8") as f:
        f.write(f'verify = "{ca}"\n')
    loop._do_reload()
    loop._do_reload()  # that CA file is what is trusted now: no change again
    assert loop.pipeline.finish.trust == [False, True, False]


def test_a_reload_names_the_keys_it_changed_and_what_it_did_to_the_bundles(
        tmp_path: Path) -> None:
    """The line "configuration reloaded" tells the admin what the reload took: the keys
    whose value it changed (a file reloaded as it was: none), how many bundles in the
    outbox it reads and decides again, and how many claimed ones it tries at once — so a
    reload that took the wrong file, or none of the edit, shows in the log."""
    loop = running(tmp_path, rows=[7, 9])
    loop._do_reload()
    config(tmp_path, duplicates="send", target="another-target")
    loop._do_reload()
    assert loop.log.info_fields == [
        {"changed": [], "bundles_read_again": 2, "deliveries_tried_now": 2},
        {"changed": ["[policy] duplicates", "[delivery] target"], "bundles_read_again": 2,
         "deliveries_tried_now": 2}]


def test_a_reload_names_a_new_token_in_its_file_but_never_the_token(tmp_path: Path) -> None:
    """A token_file rewritten in place is a change the admin wants confirmed (a systemd
    credential is not: it is the copy made at start): the reload names it, never the
    token, old or new."""
    path = http_config(tmp_path, "OLD-t0ken-123")
    loop = Loop(load_settings(path), path, rows=[])
    loop._do_reload()
    (tmp_path / "token").write_text("NEW-t0ken-456\n", encoding="utf-8")
    loop._do_reload()
    other = tmp_path / "token2"
    other.write_text("OTHER-t0ken-789\n", encoding="utf-8")
    path.write_text(path.read_text("utf-8").replace(str(tmp_path / "token"), str(other)),
                    encoding="utf-8")
    loop._do_reload()  # another file, another token: the key is the change, named once
    assert [f["changed"] for f in loop.log.info_fields] == [
        [], ["[delivery] token_file (the token it holds)"], ["[delivery] token_file"]]
    assert "t0ken" not in repr(loop.log.info_fields)


def test_a_reload_while_the_outbox_is_away_waits_for_it_and_has_it_looked_at_at_once(
        tmp_path: Path) -> None:
    """The outbox in force away at a reload (its share not mounted): nothing is applied,
    the warning says the reload waits for it, and a rescan is asked for at once, so that
    the outage and its end are seen within seconds, not rescan_seconds later; once the
    outbox is back, the reload is done."""
    from daemon.loop.reload import RELOAD_WHEN_BACK

    loop = running(tmp_path)
    (tmp_path / "outbox").rename(tmp_path / "unmounted")
    loop._do_reload()
    assert ("warning", RELOAD_WHEN_BACK) in loop.log.lines
    assert loop.reconfigured == [] and loop.rescans == 1 and not loop._reload
    loop._wake = SimpleNamespace(set=lambda: None)
    loop.outbox_back()
    assert loop._reload


def test_the_ca_file_the_environment_names_is_no_part_of_trust_when_verify_names_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """verify naming a CA file of its own: that file is what is trusted, not the one
    SSL_CERT_FILE names — replacing that one is no change of trust, and a reload then
    tries no bundle again for it."""
    own, named = tmp_path / "own.pem", tmp_path / "env.pem"
    for path in (own, named):
        path.write_text("-----BEGIN CERTIFICATE-----\nA\n", encoding="utf-8")
    monkeypatch.setenv("SSL_CERT_FILE", str(named))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    settings = Settings(outbox={"path": tmp_path},
                        delivery={"url": "https://127.0.0.1:9/b", "verify": str(own)})
    before = trusts_as(settings)
    replaced = tmp_path / "new.pem"
    replaced.write_text("-----BEGIN CERTIFICATE-----\nB\n", encoding="utf-8")
    replaced.replace(named)
    assert trusts_as(settings) == before


def test_a_ca_file_the_environment_names_that_is_not_there_yet_counts_once_it_comes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SSL_CERT_FILE names a CA file that is not there (a deployment that puts it there
    later): the look at what decides trust is no error, and the file's coming is a change
    of trust for a reload, so bundles waiting on an untrusted certificate are tried at
    once."""
    ca = tmp_path / "env-ca.pem"
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    settings = Settings(outbox={"path": tmp_path}, delivery={"url": "https://127.0.0.1:9/b"})
    before = trusts_as(settings)
    assert trusts_as(settings) == before
    ca.write_text("-----BEGIN CERTIFICATE-----\nA\n", encoding="utf-8")
    assert trusts_as(settings) != before


def test_a_reload_whose_deliverer_cannot_be_made_is_refused_and_the_old_one_stays(
        tmp_path: Path) -> None:
    """The deliverer of the new settings cannot be made (a CA file the environment names
    is garbled since the start: a ConfigError): the reload is refused with an error line
    that says why, the old settings and deliverer stay in force, and nothing is read
    again nor tried."""
    loop = running(tmp_path)
    old = loop.settings

    def cannot(s: Settings) -> Any:
        raise ConfigError("the CA file SSL_CERT_FILE names cannot be read")

    loop._make_deliverer = cannot
    config(tmp_path, duplicates="send")
    loop._do_reload()
    assert loop.settings is old and loop.reconfigured == []
    assert loop.log.lines == [("error", "configuration not reloaded; keeping the old one")]
    assert "SSL_CERT_FILE" in loop.log.fields[0]["error"]
    assert loop.marked == [] and loop.scheduled == []
