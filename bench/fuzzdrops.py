"""The drops of `python -m bench.fuzznames`: seeded random names and layouts, made in a
real outbox the ways clerks' clients make them (bench/fuzzmake.py, which keeps the
record of every input made, for the oracle: bench/fuzzoracle.py).

Every file's content is unique (a marker in it), so a hash found in sent/, quarantine/
or the outbox accounts for exactly that input; zero-byte files, FIFOs and links are
accounted for by name and kind instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from bench.corpus import invoice_xml, pdf_attachment, png_attachment
from bench.fuzzmake import Maker
from daemon.idnames import folder_name_for_id
from daemon.names import NAME_MAX

# Words a clerk's names are made of, from many scripts (Hangul and Vietnamese have
# NFD forms of several code points per letter; the Devanagari and Arabic ones join).
WORDS = ("INV-1001", "faktura", "Tidrapport oktober", "scan", "Счёт", "فاتورة", "請求書",
         "청구서", "hóa đơn", "चालान", "Rechnung für Müller", "ÅÄÖ åäö", "naïve café",
         "résumé", "Ωμέγα", "x", "a b", "-", "_", "1", "..a", "…")
# Characters and pieces that make a name hard: (label, text).
PIECES = (
    ("combining", "e\u0301"), ("nfd", unicodedata.normalize("NFD", "é")),
    ("rtl", "\u202e"), ("rlm", "\u200f"), ("zwsp", "\u200b"), ("zwj", "\u200d"),
    ("bom", "\ufeff"), ("soft-hyphen", "\u00ad"), ("emoji", "\U0001f4c4"),
    ("family", "\U0001f468\u200d\U0001f469\u200d\U0001f467"), ("flag", "\U0001f1f8\U0001f1ea"),
    ("latin1-byte", "\udce9"), ("bad-utf8", "\udcc3("), ("escape", "\x1b"),
    ("cr", "\r"), ("newline", "\n"), ("c1", "\x85"), ("tab", "\t"), ("del", "\x7f"),
    ("colon", ":"), ("star", "*"), ("question", "?"), ("quote", '"'), ("lt", "<"),
    ("pipe", "|"), ("backslash", "\\"), ("mac-colon", "\uf022"), ("mapchars-colon", "\uf03a"),
    ("mac-dot", "\uf029"), ("line-sep", "\u2028"), ("ideographic-space", "\u3000"),
    ("nbsp", "\u00a0"), ("hash", "#"), ("percent", "%20"), ("amp", "&amp;"),
    ("html", "<b>"), ("dollar", "$"), ("tilde", "~"), ("dash--", "--"), ("dot", "."),
    # Typed as text, what outboxd writes for an invisible character or a byte that is
    # not UTF-8: a name that reads like another one's shown form.
    ("typed-rtl", "\\u202e"), ("typed-escape", "\\x1b"), ("typed-byte", "\\udce9"),
)
WINDOWS_DEVICES = ("CON", "nul", "Aux", "PRN", "COM1", "lpt\u00b9", "CONIN$")
# Names that look like outboxd's own, or a client's (a format with {s}: a stem). Not the
# status page's own name: a clerk's file of that name stops the page (documented), and
# the oracle reads the page.
LOOKALIKES = ("{s}.errors.txt", "{s}.ERRORS.TXT", "{s}.send-anyway", "{s}.xml.send-anyway",
              "{s}.Send-Anyway", "{s}.send-anyway.txt", "{s}.ready", "outboxd-status (1).html",
              "OUTBOXD-STATUS.HTML", "outboxd-status-host2.html",
              "REASON.txt", "receipt.json", "Reason.TXT", ".outboxd-kept", "{s}:Zone.Identifier",
              "{s}\uf022Zone.Identifier", "._{s}", "{s}~", "~${s}", ".~lock.{s}#", "#{s}#",
              "Thumbs.db", "desktop.ini", ".DS_Store", "Icon\r", "{s}.tmp", "{s}.part",
              "{s}.crdownload", ".{s}.swp", ".syncthing.{s}.tmp", "{s} (1)", "{s} - Copy",
              "{s}.pdf.part", "{s}.converted", "{s}.embedded")
LOOKALIKE_FOLDERS = ("sent", "quarantine", "Sent", ".outboxd", "processing", "{s}.converted",
                     "{s}.embedded", "$RECYCLE.BIN", "@eaDir", "{s} (1)", "{s}.errors.txt")
INVOICE_EXTS = (".xml", ".pdf", ".XML", ".Pdf", ".xml ", ".xml.", ".xml.xml", "")
ATTACHMENT_EXTS = (".pdf", ".png", ".csv", ".txt", ".PDF", ".tif", ".jpg", "", ".xml", ".bin")


@dataclass
class Drops(Maker):
    bundles: list[tuple[str, list[tuple[str, bytes, str]]]] = field(default_factory=list)
    markers: bool = False  # completion = "marker": most bundles get NAME.ready last

    # -- names ---------------------------------------------------------------
    def name(self, limit: int = 60) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.08:
            base = rng.choice(WINDOWS_DEVICES)
        elif roll < 0.14:
            # At NAME_MAX in bytes with its extension, or just past it once the daemon
            # adds ".errors.txt", ".send-anyway", "--BUNDLEID12" or ".converted".
            unit = rng.choice(("a", "ä", "請", "\U0001f4c4", "e\u0301"))
            target = rng.choice((NAME_MAX - 4, NAME_MAX - 12, NAME_MAX - 20, NAME_MAX - 30))
            base = ""
            while len((base + unit).encode("utf-8", "surrogateescape")) <= target:
                base += unit
        else:
            base = rng.choice(WORDS) + (f"-{self.made}" if rng.random() < 0.7 else "")
            limit = max(limit, len(base) + 8)
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            label, piece = rng.choice(PIECES)
            at = rng.randrange(len(base) + 1)
            base = base[:at] + piece + base[at:]
        form = rng.random()
        if form < 0.15:
            base = unicodedata.normalize("NFD", base)
        elif form < 0.2:
            base = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in base)
        if rng.random() < 0.08:
            base += rng.choice((".", " ", "  ", ". ", "\u3000"))
        if rng.random() < 0.04:
            base = " " + base
        self.made += 1
        return base or "_"

    # -- content -------------------------------------------------------------
    def marker(self) -> int:
        self.made += 1
        return self.made * 7919 + self.rng.randrange(1 << 30)

    def invoice(self, ids: list[str]) -> bytes:
        roll = self.rng.random()
        if roll < 0.1:
            return b"junk " + self.rng.randbytes(self.rng.randrange(1, 400))
        if roll < 0.15:
            return b""
        if roll < 0.3:
            return pdf_attachment(self.marker(), size=3000, pages=1)
        docs = [invoice_xml(_xml_text(i)) for i in ids]
        if len(docs) == 1:
            return docs[0]
        body = b"".join(d.split(b"?>", 1)[1] for d in docs)
        return b'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>' + body + b"</Batch>\n"

    def attachment(self, ext: str) -> bytes:
        kind = self.rng.random()
        m = self.marker()
        if kind < 0.45:
            return pdf_attachment(m, size=2000, pages=1)
        if kind < 0.6:
            return png_attachment(m)[:None if self.rng.random() < 0.9 else 100]
        if kind < 0.75:
            return f"a;b;c\n{m};2;3\n".encode()
        if kind < 0.85:
            return b"\x00junk" + m.to_bytes(8, "big") + self.rng.randbytes(64)
        return (f"<note>{m}</note>" if ext.lower() == ".xml" else f"text {m}\n").encode()

    # -- making entries ------------------------------------------------------
    def special(self, base: Path, rel: str, inside_target: str | None) -> None:
        """A symlink (into the outbox or out of it), a FIFO, a hard link, an empty folder
        or a file nobody may read, at base/rel."""
        path = base / rel
        if self._through_link(path) or not self._try("mkdir", path.parent.mkdir, 0o777,
                                                     True, True):
            return
        roll = self.rng.random()
        if roll < 0.3:
            target = self.rng.choice([str(self.outside / "secret.pdf"),
                                      str(self.outside / "dir"), "../../../outside/secret.pdf",
                                      *([inside_target] if inside_target else [])])
            if self._try("symlink", os.symlink, target, path):
                self._record(rel, "symlink", note=target)
        elif roll < 0.45:
            if self._try("mkfifo", os.mkfifo, path):
                self._record(rel, "fifo")
        elif roll < 0.6:
            source = (base / inside_target) if inside_target and self.rng.random() < 0.6 \
                else self.outside / "linked.pdf"
            self.hard_link(source, base, rel)
        elif roll < 0.68:
            if self._try("mkdir", path.mkdir):
                self._record(rel, "dir")
        elif roll < 0.75:
            # A folder nobody may list, with a file in it.
            data = self.attachment(".pdf")
            if self._try("mkdir", path.mkdir) and self._try(
                    "write", (path / "locked.pdf").write_bytes, data):
                self._record(f"{rel}/locked.pdf", "file", data, "in a folder of mode 000",
                             path / "locked.pdf")
                os.chmod(path, 0)
        else:
            data = self.attachment(".pdf")
            before = self._replacing(path)
            if before is not False and self._try("write", path.write_bytes, data):
                self._replaced(rel, path, before, data, renamed=False)
                os.chmod(path, 0)
                self._record(rel, "file", data, "mode 000", path)

    # -- a drop --------------------------------------------------------------
    def sidecar_tree(self, ids: list[str]) -> list[tuple[str, bytes, str]]:
        """(relative path, content, how) of a sidecar's files: flat, per id, or deeper."""
        rng = self.rng
        out: list[tuple[str, bytes, str]] = []
        folders = [""]
        if len(ids) > 1 or rng.random() < 0.3:
            folders = [folder_name_for_id(i) if rng.random() < 0.85 else self.name()
                       for i in ids]
        for folder in folders:
            depth = rng.choice((0, 0, 0, 1, 2))
            for _ in range(rng.choice((0, 1, 1, 2, 3, 5))):
                parts = [folder] + [self.name(20) for _ in range(rng.randrange(depth + 1))]
                ext = rng.choice(ATTACHMENT_EXTS)
                rel = "/".join(p for p in parts if p)
                name = self.name(40) + ext
                if rng.random() < 0.1:  # a case-only or NFC/NFD twin beside it
                    twin = name.swapcase() if rng.random() < 0.5 else unicodedata.normalize(
                        "NFD" if unicodedata.is_normalized("NFC", name) else "NFC", name)
                    out.append((f"{rel}/{twin}".lstrip("/"), self.attachment(ext), "direct"))
                if rng.random() < 0.12:
                    name = rng.choice(LOOKALIKES).format(s=self.name(20))
                data = b"" if rng.random() < 0.05 else self.attachment(ext)
                how = rng.choice(("direct", "direct", "rename", "slow", "keep-times"))
                out.append((f"{rel}/{name}".lstrip("/"), data, how))
        return out

    def bundle(self) -> None:
        rng = self.rng
        stem = self.name()
        ext = rng.choice(INVOICE_EXTS)
        ids = [stem if rng.random() < 0.3 else self.name(30)
               for _ in range(rng.choice((1, 1, 1, 2, 3)))]
        invoice = self.invoice(ids)
        tree = self.sidecar_tree(ids) if rng.random() < 0.8 else []
        sidecar = stem
        spell = rng.random()
        if spell < 0.05:
            sidecar = stem.swapcase()
        elif spell < 0.1:
            sidecar = unicodedata.normalize("NFD", stem)
        files = [(f"{sidecar}/{rel}", data, how) for rel, data, how in tree]
        entry = (stem + ext, invoice, rng.choice(("direct", "rename", "slow", "keep-times")))
        files.append(entry)
        if rng.random() < 0.1:
            files.append((rng.choice(LOOKALIKES).format(s=stem), b"release " +
                          str(self.marker()).encode(), "direct"))
        if rng.random() < 0.12:
            # A twin invoice file: the same name in the other case or Unicode form, or
            # with an invisible character shown as the code typed beside it, or the same
            # stem with the other extension.
            twin = rng.choice((stem.swapcase(), unicodedata.normalize("NFD", stem),
                               unicodedata.normalize("NFC", stem), stem + "\u202e",
                               stem + "\\u202e", stem))
            twin_ext = ".pdf" if ext.lower() == ".xml" else ".xml"
            files.append((twin + twin_ext, self.invoice([twin]), "direct"))
        if tree and rng.random() < 0.2:
            self.special(self.outbox, f"{sidecar}/{self.name(20)}", f"{sidecar}/{tree[0][0]}")
        odd = rng.random()
        if odd < 0.04 and self.bundles:
            # The sidecar a symbolic link: to another bundle's sidecar, or out of the outbox.
            other = stem_of(rng.choice(self.bundles)[0])
            target = rng.choice((other, str(self.outside / "dir")))
            if self._try("symlink", os.symlink, target, self.outbox / sidecar):
                self._record(sidecar, "symlink", note=target)
            files = [f for f in files if not f[0].startswith(f"{sidecar}/")]
        elif odd < 0.07:
            # A file where the sidecar folder should be.
            files = [(sidecar, self.attachment(".pdf"), "direct"), *(
                f for f in files if not f[0].startswith(f"{sidecar}/"))]
        elif odd < 0.1 and self.bundles:
            # The invoice file a hard link to an earlier one (the same bytes, two names).
            first = self.outbox / rng.choice(self.bundles)[0]
            if os.path.isfile(first) and not os.path.islink(first):
                self.hard_link(first, self.outbox, stem + ext)
            files.remove(entry)
        invoice_last = rng.random() < 0.85
        order = files if invoice_last or entry not in files else [
            entry, *(f for f in files if f is not entry)]
        if tree and rng.random() < 0.25:
            # The sidecar built beside the outbox and moved in as a whole.
            staged = self.stage / f"s{self.made}"
            for rel, data, how in tree:
                self.write(self.stage, f"{staged.name}/{rel}", data, how)
            moved = [i for i in self.inputs if i.rel.startswith(f"{staged.name}/")]
            self.inputs = [i for i in self.inputs if i not in moved]
            if self._try("rename", staged.rename, self.outbox / sidecar):
                for i in moved:
                    i.rel = f"{sidecar}/{i.rel.split('/', 1)[1]}"
                self.inputs += moved
            else:
                shutil.rmtree(staged, ignore_errors=True)
            order = [f for f in order if not f[0].startswith(f"{sidecar}/")]
        for rel, data, how in order:
            self.write(self.outbox, rel, data, how)
        if self.markers and rng.random() < 0.8:
            marker = (stem + ".ready", b"", "direct")
            self.write(self.outbox, *marker)
            files.append(marker)
        if os.path.lexists(self.outbox / (stem + ext)):
            self.bundles.append((stem + ext, files))

    def loose(self) -> None:
        """Something beside the bundles: litter, a look-alike of outboxd's own names, an
        in-progress file, a special file, a folder of that kind."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            name = rng.choice(LOOKALIKES).format(s=self.name(30))
            self.write(self.outbox, name, f"loose {self.marker()}".encode(), "direct")
        elif roll < 0.75:
            folder = rng.choice(LOOKALIKE_FOLDERS).format(s=self.name(30))
            self.write(self.outbox, f"{folder}/{self.name(20)}.pdf", self.attachment(".pdf"),
                       "direct")
        else:
            self.special(self.outbox, self.name(30) + rng.choice((".xml", ".pdf", "")), None)

    def again(self) -> None:
        """A bundle dropped again as it was (same names, same bytes) once its invoice file
        left the outbox: a clerk's second try. What of it is still there stays as it is."""
        gone = [b for b in self.bundles if not os.path.lexists(self.outbox / b[0])]
        if gone:
            _, files = self.rng.choice(gone)
            for rel, data, how in files:
                if not os.path.lexists(self.outbox / rel):
                    self.write(self.outbox, rel, data, how, note="dropped again")

    def one(self) -> None:
        roll = self.rng.random()
        if roll < 0.65:
            self.bundle()
        elif roll < 0.9:
            self.loose()
        else:
            self.again()


def stem_of(name: str) -> str:
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def _xml_text(invoice_id: str) -> str:
    """An id as XML text: what XML 1.0 cannot hold (most controls, lone surrogates)
    dropped, markup escaped."""
    kept = "".join(c for c in invoice_id if (c in "\t\n\r" or ord(c) >= 0x20)
                   and not 0xD800 <= ord(c) <= 0xDFFF and c not in "\ufffe\uffff")
    return (kept.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            or "EMPTY")


def make_outside(outside: Path) -> dict[str, tuple[str, float]]:
    """The folder beside the outbox that links point into: a PDF that would be a valid
    attachment and a UBL invoice that would be a valid invoice, if followed. Returns
    what must never change in it (hash and mtime by relative path)."""
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.pdf").write_bytes(pdf_attachment(1, size=2000, pages=1))
    (outside / "dir" / "secret.xml").write_bytes(invoice_xml("SECRET-1"))
    (outside / "linked.pdf").write_bytes(pdf_attachment(2, size=2000, pages=1))
    return snapshot_outside(outside)


def snapshot_outside(outside: Path) -> dict[str, tuple[str, float]]:
    out: dict[str, tuple[str, float]] = {}
    for folder, dirs, files in os.walk(outside):
        for name in (*dirs, *files):
            p = Path(folder, name)
            st = p.lstat()
            sha = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            out[str(p.relative_to(outside))] = (sha, st.st_mtime)
    return out
