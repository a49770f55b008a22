"""TLS for the HTTP transport (daemon/delivery/tls.py): the SSL context built from [delivery]
verify, client_cert and client_key, on a real HTTPS receiver on 127.0.0.1 (certificates
made by openssl in the test), and the errors that name the setting and the file."""

from __future__ import annotations

import os
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import raised, without_blocking
from rawreceiver import RawReceiver

import daemon.delivery.tls
from daemon.delivery.deliver import make_deliverer
from daemon.delivery.tls import tls_verify
from daemon.errors import ConfigError, Retryable, Untrusted
from delivery.test_deliver import _one_answer_server, http_cfg, send

# The files _certificates made first in this run (name -> mode, bytes): three RSA keys
# cost openssl ~0.6 s of CPU, and no test here needs keys of its own, only files of
# its own.
_made: dict[str, tuple[int, bytes]] = {}
# The server certificate's other name: a receiver reached by a proxy (CONNECT), where
# an address on this machine would go straight (proxies.environment_proxy).
SERVER_NAME = "receiver.test"
# Its IPv6 address, also of another machine (the documentation's range): a receiver
# written with it in the url, reached by a proxy on 127.0.0.1.
SERVER_V6 = "2001:db8::5"


def _certificates(folder: Path) -> tuple[Path, Path, Path, Path, Path]:
    """A CA, a server certificate for 127.0.0.1, SERVER_NAME and SERVER_V6 and a client
    certificate, both signed by it, made with the openssl command (once a run, then
    copied into `folder`): (ca, server cert, server key, client cert, client key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
    if _made:
        for name, (mode, data) in _made.items():
            (folder / name).write_bytes(data)
            (folder / name).chmod(mode)
    else:
        before = set(folder.iterdir())
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=outboxd test CA", "-keyout", "ca.key", "-out", "ca.pem")
        for name, extra in (("server", f"subjectAltName=IP:127.0.0.1,DNS:{SERVER_NAME},"
                                             f"IP:{SERVER_V6}"),
                            ("client", "")):
            openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                    "-keyout", f"{name}.key", "-out", f"{name}.csr")
            (folder / f"{name}.ext").write_text(extra + "\n" if extra else "\n")
            openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey",
                    "ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                    "-out", f"{name}.pem")
        _made.update({p.name: (p.stat().st_mode & 0o777, p.read_bytes())
                      for p in set(folder.iterdir()) - before})
    return (folder / "ca.pem", folder / "server.pem", folder / "server.key",
            folder / "client.pem", folder / "client.key")


def _signed_by_a_new_ca(folder: Path, name: str, extra: str = "",
                        dates: tuple[str, str] | None = None) -> tuple[Path, Path, Path]:
    """A certificate (`name`.pem, `name`.key) signed by a CA of its own, which no other
    certificate here trusts: (the CA, the certificate, its key). `extra`: its
    extensions; `dates`: its notBefore and notAfter (YYYYMMDDHHMMSSZ), through
    `openssl ca`, the one of this machine's openssl (3.0) commands that sets a start."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
    folder.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN=another CA for {name}", "-keyout", "other-ca.key", "-out", "other-ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
            f"{name}.key", "-out", f"{name}.csr")
    (folder / f"{name}.ext").write_text(extra + "\n")
    if dates is None:
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "other-ca.pem", "-CAkey",
                "other-ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.pem")
    else:
        (folder / "index.txt").write_text("")
        (folder / "serial").write_text("01\n")
        (folder / "ca.cnf").write_text(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
            "serial = serial\ndefault_md = sha256\npolicy = p\n[p]\n"
            "commonName = supplied\n")
        openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "other-ca.pem", "-keyfile",
                "other-ca.key", "-in", f"{name}.csr", "-out", f"{name}.pem", "-notext",
                "-extfile", f"{name}.ext", "-startdate", dates[0], "-enddate", dates[1])
    return folder / "other-ca.pem", folder / f"{name}.pem", folder / f"{name}.key"


def _asking_for_a_client_certificate(ca: Path, cert: Path, key: Path,
                                     mode: ssl.VerifyMode = ssl.CERT_REQUIRED
                                     ) -> ssl.SSLContext:
    """A receiver's TLS that requires a client certificate signed by `ca` (CERT_OPTIONAL:
    takes one, if the client has it)."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    server.load_cert_chain(str(cert), str(key))
    server.verify_mode = mode
    return server


class TestTls:
    """verify and client_cert on a real HTTPS receiver on 127.0.0.1 (certificates made
    by openssl in the test): httpx is handed an SSL context built from the files."""

    def test_a_ca_bundle_and_a_client_certificate_are_used(self, tmp_path: Path) -> None:
        """verify = the CA's file and client_cert/client_key: the POST arrives over TLS and
        the receiver saw the client's certificate."""
        ca, cert, key, client_cert, client_key = _certificates(tmp_path)
        server = _asking_for_a_client_certificate(ca, cert, key)
        peers: list[Any] = []
        with _one_answer_server(lambda h: peers.append(h.connection.getpeercert()), "tls-1",
                                tls=server) as port:
            cfg = http_cfg(url=f"https://127.0.0.1:{port}/b", verify=str(ca),
                           client_cert=client_cert, client_key=client_key)
            receipt, _, _, _ = send(tmp_path, cfg, handler=None, real=True)
        assert receipt.receipt_id == "tls-1"
        assert peers and dict(x[0] for x in peers[0]["subject"])["commonName"] == "client"

    def test_a_receiver_the_ca_bundle_does_not_vouch_for_is_not_sent_to(
            self, tmp_path: Path) -> None:
        """The system's CAs (verify = true) do not know the test CA: the POST fails
        before any byte of the bundle leaves (a retry), and nothing arrives."""
        _, cert, key, _, _ = _certificates(tmp_path)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(str(cert), str(key))
        arrived: list[Any] = []
        with _one_answer_server(arrived.append, "never", tls=server) as port:
            with pytest.raises(Retryable) as info:
                send(tmp_path, http_cfg(url=f"https://127.0.0.1:{port}/b"), real=True)
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) and arrived == []

    def test_an_untrusted_receiver_certificate_names_verify_as_the_fix(
            self, tmp_path: Path) -> None:
        """A certificate verification failure is no network fault the admin waits out: the
        error (log, status, status page) says the certificate is not trusted and that
        [delivery] verify takes the CA's file, since verify = true trusts those the
        environment's SSL_CERT_FILE / SSL_CERT_DIR name, else certifi's public CAs, and
        not a CA added to the system's store."""
        _, cert, key, _, _ = _certificates(tmp_path)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(str(cert), str(key))
        with _one_answer_server(lambda h: None, "never", tls=server) as port:
            # Untrusted: a retry that a reload or restart brings forward (test_finish).
            with pytest.raises(Untrusted) as info:
                send(tmp_path, http_cfg(url=f"https://127.0.0.1:{port}/b"), real=True)
        said = str(info.value)
        assert "is not trusted" in said and "[delivery] verify" in said
        assert "SSL_CERT_FILE" in said and "certifi" in said
        assert "127.0.0.1" in said

    def test_verify_false_sends_to_a_receiver_nobody_vouches_for_with_or_without_a_cert(
            self, tmp_path: Path) -> None:
        """verify = false: the POST goes to a receiver whose certificate no CA known to
        outboxd signed (a trial setup); with client_cert/client_key as well, the
        receiver still gets the client's certificate."""
        ca, cert, key, client_cert, client_key = _certificates(tmp_path)
        server = _asking_for_a_client_certificate(ca, cert, key, ssl.CERT_OPTIONAL)
        peers: list[Any] = []
        with _one_answer_server(lambda h: peers.append(h.connection.getpeercert()), "plain",
                                tls=server) as port:
            url = f"https://127.0.0.1:{port}/b"
            bare, _, _, _ = send(tmp_path / "bare", http_cfg(url=url, verify=False),
                                 real=True)
            with_cert, _, _, _ = send(tmp_path / "cert", http_cfg(
                url=url, verify=False, client_cert=client_cert, client_key=client_key),
                real=True)
        assert (bare.receipt_id, with_cert.receipt_id) == ("plain", "plain")
        assert len(peers) == 2 and not peers[0]
        assert dict(x[0] for x in peers[1]["subject"])["commonName"] == "client"

    @pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
    def test_verify_true_trusts_the_environments_cas_with_or_without_a_client_cert(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
        """verify = true and a private CA named by SSL_CERT_FILE (or SSL_CERT_DIR) in the
        service's environment: the receiver it signed is trusted without a client
        certificate, and still trusted once client_cert/client_key are added (which
        trusted certifi's CAs alone, and refused it); the receiver gets the client's
        certificate."""
        ca, cert, key, client_cert, client_key = _certificates(tmp_path)
        for var in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
            monkeypatch.delenv(var, raising=False)
        if variable == "SSL_CERT_DIR":
            cas = tmp_path / "cas"
            cas.mkdir()
            (cas / "private-ca.pem").write_bytes(ca.read_bytes())
            # OpenSSL looks a CA up in a directory by its subject's hash.
            subprocess.run(["openssl", "rehash", str(cas)], check=True, capture_output=True)
            monkeypatch.setenv(variable, str(cas))
        else:
            monkeypatch.setenv(variable, str(ca))
        server = _asking_for_a_client_certificate(ca, cert, key, ssl.CERT_OPTIONAL)
        peers: list[Any] = []
        with _one_answer_server(lambda h: peers.append(h.connection.getpeercert()), "env-ca",
                                tls=server) as port:
            url = f"https://127.0.0.1:{port}/b"
            bare, _, _, _ = send(tmp_path / "bare", http_cfg(url=url), real=True)
            with_cert, _, _, _ = send(tmp_path / "cert", http_cfg(
                url=url, client_cert=client_cert, client_key=client_key), real=True)
        assert (bare.receipt_id, with_cert.receipt_id) == ("env-ca", "env-ca")
        assert len(peers) == 2 and not peers[0]
        assert dict(x[0] for x in peers[1]["subject"])["commonName"] == "client"

    def test_a_missing_ca_file_in_the_environment_is_the_same_error_with_a_client_cert(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """SSL_CERT_FILE naming no file, verify = true: with client_cert as without, the
        settings are refused naming the variable and its value, with the fix."""
        _, _, _, client_cert, client_key = _certificates(tmp_path)
        missing = tmp_path / "missing-ca.pem"
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        monkeypatch.setenv("SSL_CERT_FILE", str(missing))
        said = []
        for cfg in (http_cfg(url="https://127.0.0.1:9/b"),
                    http_cfg(url="https://127.0.0.1:9/b", client_cert=client_cert,
                             client_key=client_key)):
            with pytest.raises(ConfigError) as info:
                make_deliverer(cfg).close()
            said.append(str(info.value))
        assert said[0] == said[1]
        assert "verify = true cannot be used" in said[1]
        assert f"SSL_CERT_FILE={missing}: fix or unset it" in said[1]

    def test_a_client_key_under_a_passphrase_is_named_and_never_prompted_for(
            self, tmp_path: Path) -> None:
        """A client_key protected by a passphrase: OpenSSL would ask for it on the
        terminal (and, with none, fail as "Invalid argument"); outboxd says which file
        and why, at once, with the fix."""
        _, _, _, client_cert, client_key = _certificates(tmp_path)
        locked = tmp_path / "locked.key"
        subprocess.run(["openssl", "pkey", "-in", str(client_key), "-out", str(locked),
                        "-aes256", "-passout", "pass:secret"], check=True, capture_output=True)
        with pytest.raises(ConfigError) as info:
            tls_verify(http_cfg(url="https://127.0.0.1:9/b", client_cert=client_cert,
                                client_key=locked))
        assert f"client_key = '{locked}'" in str(info.value)
        assert "passphrase" in str(info.value) and "without a passphrase" in str(info.value)

    def test_a_passphrase_key_inside_client_cert_names_client_cert(
            self, tmp_path: Path) -> None:
        """client_cert holding the certificate and a locked key, client_key unset: the
        error names client_cert, the setting the user wrote."""
        _, _, _, client_cert, client_key = _certificates(tmp_path)
        both = tmp_path / "both.pem"
        subprocess.run(["openssl", "pkey", "-in", str(client_key), "-out", str(both),
                        "-aes256", "-passout", "pass:secret"], check=True, capture_output=True)
        both.write_text(client_cert.read_text() + both.read_text())
        with pytest.raises(ConfigError) as info:
            tls_verify(http_cfg(url="https://127.0.0.1:9/b", client_cert=both))
        assert f"client_cert = '{both}'" in str(info.value) and "passphrase" in str(info.value)

    def test_a_fifo_as_a_tls_file_is_refused_unopened(self, tmp_path: Path) -> None:
        """OpenSSL would block reading a FIFO: one swapped in for client_key after the
        settings were checked is named, with what it is, and never opened for reading."""
        _, _, _, client_cert, client_key = _certificates(tmp_path)
        cfg = http_cfg(url="https://127.0.0.1:9/b", client_cert=client_cert,
                       client_key=client_key)
        client_key.unlink()
        os.mkfifo(client_key)
        error = without_blocking(lambda: raised(lambda: tls_verify(cfg)), client_key,
                                 "tls_verify")
        assert isinstance(error, ConfigError)
        assert f"client_key = '{client_key}' is a FIFO" in str(error)

    def test_a_tls_file_that_cannot_be_read_is_the_one_named(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """ssl's own errors name no file ("Permission denied"): of a certificate and a
        key, the one this user may not read is named, with the fix."""
        _, _, _, client_cert, client_key = _certificates(tmp_path)
        real_read = daemon.delivery.tls.read_admin_file

        def denying(path: Path, limit: int) -> bytes:
            if str(path) == str(client_key):
                raise PermissionError(13, "Permission denied", str(path))
            return real_read(path, limit)
        monkeypatch.setattr("daemon.delivery.tls.read_admin_file", denying)
        with pytest.raises(ConfigError) as info:
            tls_verify(http_cfg(url="https://127.0.0.1:9/b", client_cert=client_cert,
                                client_key=client_key))
        assert f"client_key = '{client_key}' cannot be used: Permission denied" in \
            str(info.value)
        assert "client_cert" not in str(info.value) and "readable" in str(info.value)

    @pytest.mark.parametrize("setting", ["verify", "client_cert"])
    def test_a_tls_file_that_does_not_load_is_named_with_its_setting(
            self, tmp_path: Path, setting: str) -> None:
        """A CA bundle or client certificate that is no PEM: the error names the setting
        and the file, and says what the file must be."""
        junk = tmp_path / "junk.pem"
        junk.write_text("hello\n")
        with pytest.raises(ConfigError) as info:
            tls_verify(http_cfg(url="https://127.0.0.1:9/b", **{setting: str(junk)}))
        assert f"{setting} = '{junk}' cannot be used" in str(info.value)
        assert "PEM" in str(info.value)

    def test_a_receiver_asking_for_a_client_certificate_names_client_cert(
            self, tmp_path: Path) -> None:
        """A receiver that requires a client certificate, none set: TLS 1.3's alert
        (TLSV13_ALERT_CERTIFICATE_REQUIRED) read as "cannot reach the receiver", a network
        fault to wait out; it says the receiver asks for one and which settings take it,
        and a reload that sets them tries again at once (Untrusted)."""
        ca, cert, key, _, _ = _certificates(tmp_path)
        arrived: list[Any] = []
        with _one_answer_server(arrived.append, "never",
                                tls=_asking_for_a_client_certificate(ca, cert, key)) as port:
            with pytest.raises(Untrusted) as info:
                send(tmp_path, http_cfg(url=f"https://127.0.0.1:{port}/b", verify=str(ca)),
                     real=True)
        said = str(info.value)
        assert f"the receiver at 127.0.0.1:{port} asks for a client certificate" in said
        assert "[delivery] client_cert and client_key" in said
        assert "docs/configuration.md" in said and "cannot reach" not in said
        assert arrived == []

    def test_a_tls_1_2_receiver_asking_for_a_client_certificate_names_it_as_a_cause(
            self, tmp_path: Path) -> None:
        """A TLS 1.2 receiver that requires a client certificate, none set, ends the
        handshake with the alert handshake_failure, which also means no cipher in common:
        the error names both causes, the client certificate's with its settings."""
        ca, cert, key, _, _ = _certificates(tmp_path)
        server = _asking_for_a_client_certificate(ca, cert, key)
        server.maximum_version = ssl.TLSVersion.TLSv1_2
        with _one_answer_server(lambda h: None, "never", tls=server) as port:
            with pytest.raises(Untrusted) as info:
                send(tmp_path, http_cfg(url=f"https://127.0.0.1:{port}/b", verify=str(ca)),
                     real=True)
        said = str(info.value)
        assert f"the receiver at 127.0.0.1:{port} ended the TLS handshake" in said
        assert "asks for a client certificate and none is set" in said
        assert "[delivery] client_cert and client_key" in said and "cipher" in said

    def test_a_client_certificate_the_receiver_does_not_trust_is_said_refused(
            self, tmp_path: Path) -> None:
        """Our client certificate signed by a CA the receiver does not know (TLS alert
        unknown_ca): the error says the receiver refused this server's certificate and
        what to ask the operator, not that the receiver cannot be reached."""
        ca, cert, key, _, _ = _certificates(tmp_path)
        _, client_cert, client_key = _signed_by_a_new_ca(tmp_path / "other", "stranger")
        with _one_answer_server(lambda h: None, "never",
                                tls=_asking_for_a_client_certificate(ca, cert, key)) as port:
            with pytest.raises(Untrusted) as info:
                send(tmp_path, http_cfg(url=f"https://127.0.0.1:{port}/b", verify=str(ca),
                                        client_cert=client_cert, client_key=client_key),
                     real=True)
        said = str(info.value)
        assert "refused this server's client certificate ([delivery] client_cert)" in said
        assert "does not trust the CA that signed it" in said
        assert "TLSV1_ALERT_UNKNOWN_CA" in said and "cannot reach" not in said

    def test_an_expired_receiver_certificate_is_said_expired_with_renewal_and_clock(
            self, tmp_path: Path) -> None:
        """The receiver's certificate ended yesterday (made with openssl ca's dates,
        relative to now): the error says it has expired and that the operator must renew
        it, or this server's clock is wrong — not a private CA or the host name, which
        sent the admin to change verify or url for nothing."""
        now = datetime.now(UTC)
        ca, cert, key = _signed_by_a_new_ca(
            tmp_path / "expired", "receiver", "subjectAltName=IP:127.0.0.1",
            ((now - timedelta(days=3)).strftime("%Y%m%d%H%M%SZ"),
             (now - timedelta(days=1)).strftime("%Y%m%d%H%M%SZ")))
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(str(cert), str(key))
        with _one_answer_server(lambda h: None, "never", tls=server) as port:
            with pytest.raises(Untrusted) as info:
                send(tmp_path, http_cfg(url=f"https://127.0.0.1:{port}/b", verify=str(ca)),
                     real=True)
        said = str(info.value)
        assert f"the TLS certificate of the receiver at 127.0.0.1:{port} has expired" in said
        assert "must renew it" in said and "clock" in said
        assert "private CA" not in said and "fix [delivery] url" not in said

    def test_a_receiver_certificate_refused_through_a_proxy_is_the_receivers_not_the_proxys(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """HTTPS_PROXY and an https:// url: TLS runs inside the proxy's CONNECT tunnel,
        with the receiver. Its certificate not trusted was said as "cannot reach the
        proxy … check the proxy's address", sending the admin to the proxy; it is the
        receiver's certificate, with verify as the fix, as without a proxy."""
        for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                    "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            monkeypatch.delenv(var, raising=False)
        _, cert, key, _, _ = _certificates(tmp_path)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(str(cert), str(key))
        with RawReceiver(lambda rx, conn, n: None, tls=server, tunnel=True) as rx:
            monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{rx.port}")
            with pytest.raises(Untrusted) as info:
                send(tmp_path, http_cfg(url=f"https://{SERVER_NAME}:9/b"), real=True)
            assert rx.heads and rx.heads[0].startswith(f"CONNECT {SERVER_NAME}:9 ")
        said = str(info.value)
        assert f"the TLS certificate of the receiver at {SERVER_NAME}:9 is not trusted" in said
        assert "proxy" not in said and "[delivery] verify" in said


def test_an_https_url_whose_port_speaks_plain_http_says_so_and_names_the_url(
        tmp_path: Path) -> None:
    """[delivery] url = https://… naming a port where the receiver speaks plain HTTP (the
    admin wrote https:// for an http:// receiver, or the port of its plain listener): the
    handshake fails on WRONG_VERSION_NUMBER, and was said as "cannot reach the receiver",
    which sent the admin to the network and told clerks the operator's server does not
    answer. The error says the receiver does not speak TLS there and that [delivery] url
    is the fix; it is retried (nothing posted, nothing dropped)."""
    arrived: list[Any] = []
    with _one_answer_server(arrived.append, "never") as port:
        with pytest.raises(Retryable) as info:
            send(tmp_path, http_cfg(url=f"https://127.0.0.1:{port}/b"), real=True)
    said = str(info.value)
    assert not isinstance(info.value, Untrusted)
    assert f"the receiver at 127.0.0.1:{port} does not speak TLS" in said
    assert "[delivery] url" in said and "cannot reach" not in said
    assert arrived == []
