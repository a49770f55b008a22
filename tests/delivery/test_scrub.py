"""Our secrets taken out of what a receiver answers (daemon/delivery/scrub.py): the token and the
url's credentials in each form an answer may quote them (as sent, base64, %-escaped,
HTML- or JSON-escaped, across the cut), shown through a delivery whose answer echoes
them, as the journal, the papers and the status page would keep it."""

from __future__ import annotations

import base64
import html
import io
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from rawreceiver import RawReceiver

from daemon.delivery.answers import BODY_LIMIT
from daemon.errors import Paused, Rejected, Retryable
from delivery.test_answer_deadline import ELSEWHERE, PROXY_VARIABLES, deliver_once
from delivery.test_deliver import Recorder, http_cfg, send


class TestAnswersThatEchoSecrets:
    """A receiver that echoes our request headers in its answer: neither the token nor
    the url's Basic credentials reach the journal, the papers or the status page."""

    @staticmethod
    def echo(status: int, auth: str | None = None) -> Any:
        def handler(request: httpx.Request) -> httpx.Response:
            request.read()
            nonlocal auth
            auth = auth or request.headers.get("Authorization", "")
            if status < 300:
                return httpx.Response(status, json={"receipt_id": "r-1", "you_sent": {
                    "Authorization": auth}, "list": [auth]})
            return httpx.Response(status, text=f"refused; you sent Authorization: {auth}")
        return handler

    def test_a_rejection_quoting_the_bearer_token_is_scrubbed(self, tmp_path: Path) -> None:
        """A 400 whose body quotes 'Bearer TOKEN': the error's text and body say ***."""
        with pytest.raises(Rejected) as info:
            send(tmp_path, http_cfg(token="SuperSecretTok123"), self.echo(400))
        assert "SuperSecretTok123" not in str(info.value) + info.value.body
        assert "Bearer ***" in info.value.body

    def test_a_receipt_quoting_the_token_is_scrubbed(self, tmp_path: Path) -> None:
        """A 201 that echoes the header in its JSON: every string of the receipt is
        scrubbed, nested ones too; the receipt id is kept."""
        receipt, _, _, _ = send(tmp_path, http_cfg(token="SuperSecretTok123"), self.echo(201))
        assert "SuperSecretTok123" not in json.dumps(receipt.body)
        assert receipt.body["you_sent"] == {"Authorization": "Bearer ***"}
        assert receipt.receipt_id == "r-1"

    def test_basic_credentials_echoed_in_base64_are_scrubbed(self, tmp_path: Path) -> None:
        """The url's user:password goes out as Basic base64 (httpx's Client adds it; the
        test transport here is handed the request before that, so the answer quotes the
        header as the Client would send it): a 503 quoting it keeps neither the base64
        nor the password."""
        cfg = http_cfg(url="http://user:Passw0rdX@127.0.0.1:9/b")
        encoded = base64.b64encode(b"user:Passw0rdX").decode()
        with pytest.raises(Retryable) as info:
            send(tmp_path, cfg, self.echo(503, f"Basic {encoded} (Passw0rdX)"))
        assert "Basic ***" in info.value.body
        assert encoded not in info.value.body and "Passw0rdX" not in info.value.body

    def test_a_key_in_the_urls_query_echoed_with_the_url_is_scrubbed(
            self, tmp_path: Path) -> None:
        """A receiver that takes its key in the url's query (`?access_token=…`) and quotes
        the request's url in its error page: the key is kept neither as written
        (%-escaped) nor decoded. A short value such as `?auth=1` is no credential and
        stays (taking every "1" out of the answer would garble it)."""
        cfg = http_cfg(url="http://127.0.0.1:9/b?auth=1&access_token=Qy%2BSecretKey9")

        def handler(request: httpx.Request) -> httpx.Response:
            request.read()
            return httpx.Response(400, text=f"no such tenant at {request.url} "
                                            "(key Qy+SecretKey9)")
        with pytest.raises(Rejected) as info:
            send(tmp_path, cfg, handler)
        assert "SecretKey9" not in str(info.value) + info.value.body
        assert "?auth=1&access_token=***" in info.value.body

    @pytest.mark.parametrize("escape", [
        lambda t: html.escape(t), lambda t: html.escape(t, quote=False),
        lambda t: html.escape(t).replace("&#x27;", "&apos;"),
        # Go's html/template and encoding/xml; PHP's htmlspecialchars
        lambda t: html.escape(t).replace("&quot;", "&#34;").replace("&#x27;", "&#39;"),
        lambda t: html.escape(t).replace("&#x27;", "&#039;")],
        ids=["python", "python-unquoted", "xml", "go", "php"])
    def test_a_token_echoed_in_an_html_or_xml_page_is_scrubbed(
            self, tmp_path: Path, escape: Any) -> None:
        """An error page in HTML or XML quotes the token with & < > and quotes escaped
        (the token rule allows them): that form is taken out too."""
        token = "Tk&9<x>\"q'Z/7+w="
        with pytest.raises(Rejected) as info:
            send(tmp_path, http_cfg(token=token),
                 self.echo(400, f"<p>Bearer {escape(token)}</p>"))
        assert escape(token) not in info.value.body and "Bearer ***" in info.value.body


    @pytest.mark.parametrize("shape", ["slash-escaped", "unicode-escaped", "cut"])
    def test_a_token_hidden_by_json_escapes_or_the_cut_is_scrubbed_too(
            self, tmp_path: Path, shape: str) -> None:
        """The token written as JSON may write it ('/' as '\\/', every character as
        \\uXXXX), or standing across BODY_LIMIT where the kept text is cut: none of it
        survives in the kept body."""
        token = "s3cr3t/Token+Value_0123456789abcdef"
        if shape == "slash-escaped":
            body = json.dumps({"auth": f"Bearer {token}"}).replace("/", "\\/")
        elif shape == "unicode-escaped":
            body = '{"auth": "' + "".join(f"\\u{ord(c):04x}" for c in token) + '"}'
        else:
            body = "x" * (BODY_LIMIT - 20) + token
        answer = httpx.Response(400, content=body.encode())
        with pytest.raises(Rejected) as info:
            send(tmp_path, http_cfg(token=token), Recorder(answer))
        kept = info.value.body
        assert "s3cr3t" not in kept and "\\u0073\\u0033" not in kept
        assert "***" in kept


def _escaped(token: str, which: str) -> str:
    """`token` as a JSON writer (or a hand-made one) may escape it: every character as
    \\uXXXX in lower, upper or mixed hex, every other one, or with `"` and `/` in
    their two-character forms among \\u escapes."""
    def u(c: str, upper: bool) -> str:
        code = f"{ord(c):04x}"
        return "\\u" + (code.upper() if upper else code)
    if which == "lower":
        return "".join(u(c, False) for c in token)
    if which == "upper":
        return "".join(u(c, True) for c in token)
    if which == "mixed":
        return "".join(u(c, i % 2 == 0) for i, c in enumerate(token))
    if which == "partly":
        return "".join(u(c, False) if i % 2 else c for i, c in enumerate(token))
    return "".join({'"': '\\"', "/": "\\/"}.get(c) or u(c, False) for c in token)


# Bodies that outboxd keeps as text, not decoded: JSON escapes in them stay escapes.
_KEPT_AS_TEXT = {
    "text": lambda said: f"you sent: Bearer {said}".encode(),
    "json with NaN": lambda said: f'{{"auth": "Bearer {said}", "n": NaN}}'.encode(),
    "json over 64 KiB": lambda said: f'{{"auth": "Bearer {said}", "pad": "'.encode()
    + b"z" * (70 << 10) + b'"}',
}


@pytest.mark.parametrize("body", list(_KEPT_AS_TEXT))
@pytest.mark.parametrize("which", ["lower", "upper", "mixed", "partly", "short escapes"])
@pytest.mark.parametrize("status", [201, 400])
def test_a_json_escaped_token_in_a_body_kept_as_text_is_scrubbed(
        tmp_path: Path, status: int, which: str, body: str) -> None:
    """A body kept as text (plain text, JSON that is not read as JSON) quoting the token
    JSON-escaped — each character as \\uXXXX in any case of hex, only some of them, or
    `"` and `/` in their short forms among them: neither the receipt (201) nor the
    rejection (400) keeps it, in the body or in what is said. The kept text went into
    receipt.json, the journal, the log and the status page as it came."""
    token = 'Tk/9"q-Secret_42'
    said = _escaped(token, which)
    answer = httpx.Response(status, content=_KEPT_AS_TEXT[body](said),
                            headers={"Content-Type": "text/plain"})
    if status == 201:
        receipt, _, _, _ = send(tmp_path, http_cfg(token=token), Recorder(answer))
        kept = json.dumps(receipt.as_dict())
    else:
        with pytest.raises(Rejected) as info:
            send(tmp_path, http_cfg(token=token), Recorder(answer))
        kept = f"{info.value} {info.value.body}"
    assert said not in kept and said not in json.loads(json.dumps(kept))
    assert "Bearer ***" in kept


class TestTheEnvironmentsProxyCredentials:
    """HTTP_PROXY with a user and password (`http://user:pw@proxy:3128`): httpx sends them
    to the proxy as `Proxy-Authorization: Basic …` on every POST to a receiver
    elsewhere. A proxy that forwards the header, or an answer that quotes the request,
    must not put them into receipt.json in sent/ (which the people on the share read),
    the journal or the status page: they are outboxd's secrets as much as the token."""

    @staticmethod
    def through_echoing_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              status: int) -> Any:
        """One delivery to ELSEWHERE by way of a proxy on 127.0.0.1 that answers
        `status` itself with a body quoting the request's head; its Receipt (a
        rejection raises)."""
        def answer(rx: RawReceiver, conn: socket.socket, n: int) -> None:
            body = json.dumps({"receipt_id": "r-1", "request": rx.head()}).encode()
            conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        for var in PROXY_VARIABLES:
            monkeypatch.delenv(var, raising=False)
        with RawReceiver(answer) as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://px%40user:Pr0xy%2FPass@127.0.0.1:{proxy.port}")
            outcome = deliver_once(tmp_path, http_cfg(url=ELSEWHERE, allow_plain_http=True))
            assert proxy.heads and "Proxy-Authorization: Basic" in proxy.heads[0]
        return outcome

    def test_a_receipt_quoting_the_proxy_authorization_keeps_no_proxy_password(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A 201 whose body quotes the request head: the receipt's body holds neither
        the base64 user:password pair nor the password; it says *** in their place."""
        receipt = self.through_echoing_proxy(tmp_path, monkeypatch, 201)
        kept = json.dumps(receipt.body)
        pair = base64.b64encode(b"px@user:Pr0xy/Pass").decode()
        assert pair not in kept and "Pr0xy" not in kept
        assert "Proxy-Authorization: Basic ***" in receipt.body["request"]
        assert receipt.receipt_id == "r-1"

    def test_a_rejection_quoting_the_proxy_authorization_keeps_no_proxy_password(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A 400 (REASON.txt on the share quotes its body): the same."""
        with pytest.raises(Rejected) as info:
            self.through_echoing_proxy(tmp_path, monkeypatch, 400)
        pair = base64.b64encode(b"px@user:Pr0xy/Pass").decode()
        kept = info.value.body + str(info.value)
        assert pair not in kept and "Pr0xy" not in kept
        assert "Proxy-Authorization: Basic ***" in info.value.body


class TestTheProxyPasswordAtDebugLevel:
    """The environment's proxy password (HTTP_PROXY=http://user:pw@…) reaches no log line
    under [log] level = "debug" — httpx and httpcore log requests and headers there — and
    no error the delivery raises, neither its text nor its repr nor the body kept with
    it, whether the proxy is down or answers 407 quoting the request's head."""

    @staticmethod
    def delivered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, port: int) -> tuple[Any, str]:
        """One delivery to ELSEWHERE through the proxy at 127.0.0.1:`port`; its outcome
        and all the JSON log held, at debug level."""
        from daemon import logs
        from daemon.configuration.config_sections import LogConfig
        for var in PROXY_VARIABLES:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://px%40user:Pr0xy%2FPass@127.0.0.1:{port}")
        out = io.StringIO()
        logs.configure(LogConfig(format="json", level="debug"), out)
        try:
            try:
                outcome: Any = deliver_once(tmp_path, http_cfg(url=ELSEWHERE,
                                                               allow_plain_http=True))
            except (Rejected, Paused) as exc:
                outcome = exc
            logs.get().debug("delivery done", outcome=repr(outcome))
        finally:
            logs.configure()
        return outcome, out.getvalue()

    @staticmethod
    def assert_no_password(outcome: Any, logged: str) -> None:
        pair = base64.b64encode(b"px@user:Pr0xy/Pass").decode()
        kept = [logged, str(outcome), repr(outcome), str(getattr(outcome, "body", ""))]
        for text in kept:
            assert "Pr0xy" not in text and pair not in text, text

    def test_a_proxy_that_is_down(self, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]  # bound, never listening: refused
            outcome, logged = self.delivered(tmp_path, monkeypatch, port)
        assert isinstance(outcome, Retryable) and "proxy" in str(outcome)
        self.assert_no_password(outcome, logged)

    def test_a_proxy_that_answers_407_quoting_the_request(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        def answer(rx: RawReceiver, conn: socket.socket, n: int) -> None:
            body = f"denied: {rx.head()}".encode()
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                         b"Proxy-Authenticate: Basic realm=x\r\nContent-Type: text/plain\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        with RawReceiver(answer) as proxy:
            outcome, logged = self.delivered(tmp_path, monkeypatch, proxy.port)
            assert proxy.heads and "Proxy-Authorization: Basic" in proxy.heads[0]
        assert "407" in str(outcome)
        self.assert_no_password(outcome, logged)
