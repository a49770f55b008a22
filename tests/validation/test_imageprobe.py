"""Image facts from Pillow, headers only (imageprobe.py): an image cut short, a JPEG's
resolution, and what a reader loads before it is ready (warm_up)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from daemon.validation.imageprobe import DAMAGED_OTHERWISE, TRUNCATED, probe_image


def _printed_fresh(code: str) -> list[str]:
    """What `code` prints, word by word, run in a fresh interpreter in the repository."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60, cwd=Path(__file__).parent.parent.parent
                          ).stdout.split()


def test_warm_up_registers_every_image_kind_probed_without_loading_all_of_pillow() -> None:
    """After warm_up() (a reader, before its "ready"), each kind probe_image opens has its
    plugin loaded, so no first file pays for it, and Pillow's init() of all its plugins
    (which any kind outside preinit's would trigger) has not run. In a fresh interpreter:
    this one has opened images already."""
    code = ("from PIL import Image\nfrom daemon.validation import imageprobe\n"
            "imageprobe.warm_up()\n"
            "missing = set(imageprobe._PIL_FORMATS.values()) - set(Image.OPEN)\n"
            "print(sorted(missing), Image._initialized)\n")
    out = _printed_fresh(code)
    assert out == ["[]", "1"], f"kinds without their plugin, Pillow's init level: {out}"


def test_pypdf_comes_in_with_the_first_pdf_or_a_readers_warm_up_not_with_the_daemon() -> None:
    """pypdf (~35 ms to import) is loaded where a PDF is opened, not by importing the daemon
    (`run`, whose reader processes open the PDFs) nor `status` or `config`; a reader's
    warm_up() loads it before its "ready", so that no bundle pays for it. In a fresh
    interpreter: this one has opened PDFs already."""
    code = ("import io, sys\n"
            "import daemon.actions.run, daemon.actions.status, daemon.actions.showconfig\n"
            "print('pypdf' in sys.modules)\n"
            "from daemon.validation import imageprobe\n"
            "imageprobe.warm_up()\n"
            "print('pypdf' in sys.modules)\n")
    out = _printed_fresh(code)
    assert out == ["False", "True"], f"pypdf loaded by the imports, by warm_up: {out}"


# ---------------------------------------------- images Pillow refuses otherwise

class TestDamagedOtherwise:
    """An image Pillow refuses where nothing more precise is known (not cut short, no
    TIFF compression it cannot read): plain words for the clerk (the rule names the
    kind); Pillow's own words kept apart, on one short line, for the admin."""

    @pytest.mark.parametrize(("kind", "data", "words"), [
        ("png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "Pillow: cannot identify image file"),
        ("jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "Pillow: cannot identify image file"),
        ("bmp", b"BM" + b"\x00" * 64, "Pillow: Unsupported BMP header type (0)"),
    ])
    def test_the_error_is_plain_words_and_pillows_come_apart(self, kind: str, data: bytes,
                                                               words: str) -> None:
        """"cannot identify image file" without the repr of the file object Pillow
        appends (nothing for anyone)."""
        facts = probe_image(io.BytesIO(data), kind, 10**8)
        assert facts.error == DAMAGED_OTHERWISE and facts.detail == words

    def test_pillows_long_words_are_cut_to_one_short_line(self) -> None:
        """An exception text of thousands of characters is kept to 100 characters on one
        line: the message stays readable."""
        from daemon.validation.imageprobe import _pillows_words
        detail = _pillows_words(OSError("bad\n" + "x" * 5000))
        assert detail is not None
        assert detail.startswith("Pillow: bad x") and "\n" not in detail
        assert len(detail) == len("Pillow: ") + 100 and detail.endswith("…")

    @pytest.mark.parametrize("fault", [
        TypeError("unsupported operand type(s) for +: 'NoneType' and 'int'"),
        AssertionError(), KeyError(259), IndexError("tuple index out of range"),
        ValueError("buffer is not large enough")])
    def test_pillow_failing_in_its_own_code_is_said_as_damaged_and_logged_only(
            self, monkeypatch: pytest.MonkeyPatch, fault: Exception) -> None:
        """Pillow failing in its own code on a file (a TypeError, an AssertionError …):
        the clerk reads that the image is damaged and what to do, without Pillow's text
        ("Pillow: unsupported operand type(s) for +…", nothing a clerk can act on); the
        text goes to the log, for the admin."""
        from structlog.testing import capture_logs

        from daemon.validation import imageprobe

        def fails(*_: object, **__: object) -> None:
            raise fault
        monkeypatch.setattr(imageprobe.Image, "open", fails)
        with capture_logs() as logs:
            facts = probe_image(io.BytesIO(_noise("PNG")), "png", 10**8)
        assert facts.error == DAMAGED_OTHERWISE and facts.detail is None
        [line] = [e for e in logs if "Pillow failed in its own code" in e["event"]]
        assert line["error"].startswith(type(fault).__name__)


# ------------------------------------------------------------ images cut short

def _noise(fmt: str, **kw: object) -> bytes:
    """A 300-DPI image whose data is not one repeated byte, so that cutting it loses some."""
    buf = io.BytesIO()
    Image.effect_noise((300, 200), 60).convert("RGB").save(buf, fmt, dpi=(300, 300), **kw)
    return buf.getvalue()


IMAGES = {
    "png": ("png", {}),
    "jpeg": ("jpeg", {}),
    "progressive jpeg": ("jpeg", {"progressive": True}),
    "jpeg with restart markers": ("jpeg", {"restart_marker_blocks": 1}),
    "tiff": ("tiff", {}),
    "two-page tiff": ("tiff", {"save_all": True,
                               "append_images": [Image.new("RGB", (100, 100))]}),
    "four-page jpeg-compressed tiff": ("tiff", {
        "save_all": True, "compression": "jpeg",
        "append_images": [Image.effect_noise((300, 200), 60).convert("RGB")] * 3}),
    "bmp": ("bmp", {}),
    "gif": ("gif", {}),
    "animated gif": ("gif", {"save_all": True, "duration": 500, "append_images": [
        Image.effect_noise((300, 200), 90).convert("RGB")]}),
}


@pytest.mark.parametrize("name", IMAGES)
def test_a_whole_image_is_read_without_error(name: str) -> None:
    kind, kw = IMAGES[name]
    facts = probe_image(io.BytesIO(_noise(kind.upper(), **kw)), kind, 10**8)
    assert facts.error is None and facts.frames


@pytest.mark.parametrize("name", IMAGES)
def test_an_image_cut_short_is_an_error(name: str) -> None:
    """A broken copy or download that ends two thirds in would print half an image."""
    kind, kw = IMAGES[name]
    data = _noise(kind.upper(), **kw)
    facts = probe_image(io.BytesIO(data[:len(data) * 2 // 3]), kind, 10**8)
    assert facts.error is not None and "ends before the image does" in facts.error


def test_a_tiff_one_byte_short_is_cut_short() -> None:
    """A TIFF whose last strip lacks its very last byte ends before the image does: the
    first byte missing counts, not only a larger cut."""
    data = _noise("TIFF")
    assert probe_image(io.BytesIO(data), "tiff", 10**8).error is None
    assert probe_image(io.BytesIO(data[:-1]), "tiff", 10**8).error == TRUNCATED


@pytest.mark.parametrize("kind", ["png", "jpeg", "tiff", "bmp", "gif"])
def test_bytes_after_the_end_of_an_image_are_not_an_error(kind: str) -> None:
    """Phones append trailers (a motion photo's video) after a JPEG's end marker."""
    data = _noise(kind.upper()) + b"\xff\xda\x00\x10trailer" + bytes(500)
    assert probe_image(io.BytesIO(data), kind, 10**8).error is None


def test_a_multi_page_tiff_cut_short_at_a_page_boundary_is_an_error() -> None:
    """Pillow writes each page's directory after its data: a file cut inside a page's
    directory ends with whole pages before it, and Pillow only warns and reports fewer
    pages (the first directory already inside Image.open). Every cut around each
    directory is an error, never fewer pages (review)."""
    pages = [Image.effect_noise((200, 150), 60).convert("RGB") for _ in range(4)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:], compression="jpeg",
                  dpi=(300, 300))
    data = buf.getvalue()
    directories = [int.from_bytes(data[4:8], "little" if data[:2] == b"II" else "big")]
    with Image.open(io.BytesIO(data)) as im:
        for n in range(1, 4):
            directories.append(im.tag_v2.next)
            im.seek(n)
    cuts = {cut for at in directories for cut in range(at - 8, at + 240) if cut < len(data)}
    passed = [cut for cut in sorted(cuts)
              if probe_image(io.BytesIO(data[:cut]), "tiff", 10**8).error is None]
    assert passed == []


@pytest.mark.parametrize("mode", ["RGB", "1", "P"])
def test_a_bmp_whose_last_row_lacks_its_padding_is_whole(mode: str) -> None:
    """Each BMP row is padded to 4 bytes; some writers leave out the padding after the
    last row. Pillow reads such a file whole (the padding holds no pixel), so it is no
    file cut short; a cut into the last row's pixels still is."""
    buf = io.BytesIO()
    Image.effect_noise((7, 5), 60).convert(mode).save(buf, "BMP")
    data = buf.getvalue()
    padding = {"RGB": 3, "1": 3, "P": 1}[mode]  # 7 pixels: 21, 1 or 7 bytes of a row
    unpadded = data[:-padding]
    with Image.open(io.BytesIO(unpadded)) as im:
        im.load()  # Pillow decodes every pixel of it
    assert probe_image(io.BytesIO(unpadded), "bmp", 10**8).error is None
    assert probe_image(io.BytesIO(data[:-padding - 1]), "bmp", 10**8).error == TRUNCATED


@pytest.mark.parametrize("kind", ["gif", "bmp"])
def test_every_cut_of_a_gif_or_bmp_is_an_error(kind: str) -> None:
    """Pillow reads only their headers: without a look at their end, a GIF or BMP cut
    anywhere in its pixels (or, for an animated GIF, between its frames) passed and
    would print half a picture. Every cut, and for a GIF the zeros of a copy that sized
    the file first, is an error now; the whole file is not. (A BMP's zeros are black
    pixels: a BMP of its full size is whole, as far as any reader can tell.)"""
    frames = [Image.effect_noise((40, 30), 60 + 20 * i).convert("RGB") for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, kind.upper(), **({"save_all": True, "append_images": frames[1:]}
                                         if kind == "gif" else {}))
    data = buf.getvalue()
    assert probe_image(io.BytesIO(data), kind, 10**8).error is None
    passed = [cut for cut in range(40, len(data))
              if probe_image(io.BytesIO(data[:cut]), kind, 10**8).error is None]
    assert passed == []
    sized_first = data[:len(data) // 2] + bytes(len(data) - len(data) // 2)
    assert kind == "bmp" or probe_image(io.BytesIO(sized_first), kind, 10**8).error \
        == TRUNCATED


def _jpeg(dpi: tuple[int, int] | None = None, **exif_tags: float) -> bytes:
    """A JPEG with a JFIF density of `dpi` (none: JFIF's aspect ratio only) and EXIF tags
    by name: x (XResolution), y (YResolution), unit (ResolutionUnit)."""
    exif = Image.Exif()
    for name, tag in (("x", 0x011A), ("y", 0x011B), ("unit", 0x0128)):
        if name in exif_tags:
            exif[tag] = exif_tags[name]
    if not exif_tags:
        exif[0x0110] = "Phone"  # EXIF without a resolution: a camera's model only
    buf = io.BytesIO()
    Image.new("RGB", (30, 30), "white").save(buf, "JPEG", exif=exif,
                                             **({"dpi": dpi} if dpi else {}))
    return buf.getvalue()


def _jfif_per_cm(x: int, y: int) -> bytes:
    """A JPEG whose JFIF header states its density in dots per centimetre (unit 2), as
    some scanners write it; Pillow writes dots per inch, so the header is set here."""
    data = bytearray(_jpeg((x, y)))
    assert data[6:11] == b"JFIF\0"  # APP0 first: units at 13, densities at 14 and 16
    data[13] = 2
    return bytes(data)


@pytest.mark.parametrize("data,resolution", [
    (_jpeg((300, 300)), (300.0, 300.0, 2)),
    (_jpeg((72, 72), x=300.0, y=300.0, unit=2), (72.0, 72.0, 2)),  # JFIF's header first
    (_jpeg(x=300.0, y=300.0, unit=2), (300.0, 300.0, 2)),
    (_jpeg(x=300.0, y=600.0, unit=2), (300.0, 600.0, 2)),
    (_jpeg(x=300.0, y=300.0), (300.0, 300.0, None)),
    (_jpeg(x=118.11, y=118.11, unit=3), (118.11, 118.11, 3)),
    (_jpeg(x=300.0, y=300.0, unit=1), (300.0, 300.0, 1)),
    (_jpeg(), (None, None, None)),
    (_jfif_per_cm(118, 118), (118.0, 118.0, 3)),
], ids=["jfif", "jfif-over-exif", "exif", "exif-x-y-differ", "exif-no-unit", "exif-cm",
        "exif-unit-none", "exif-without-resolution", "jfif-cm"])
def test_a_jpegs_resolution_is_what_its_jfif_header_or_else_its_exif_states(
        data: bytes, resolution: tuple[float | None, float | None, int | None]) -> None:
    """x and y each, and the unit as a TIFF page's (missing = inch): not Pillow's dpi,
    which takes EXIF's x for y too and makes up 72 DPI where EXIF has no resolution or
    no unit — a photo of 300 DPI without a unit tag was refused for print as 72 DPI."""
    [frame] = probe_image(io.BytesIO(data), "jpeg", 10**8).frames
    assert (frame.x_resolution, frame.y_resolution, frame.unit) == resolution

