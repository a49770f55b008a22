"""The walks of an image's structure before Pillow opens it (imagetail.py): a JPEG's
markers, a PNG's chunks and a GIF's blocks, which Pillow (and the walk to an image's
end) read one at a time in Python, counted first and refused past limits that real
images stay far below — before Pillow is asked to open the file, asserted by the opens
it was asked for, not by time. The hostile files are made here, a few MB each."""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms

from daemon.validation.imageprobe import TRUNCATED, probe_image
from daemon.validation.imagetail import jpeg_walk


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What Pillow was asked to open during the test: a file refused before Pillow
    opens it leaves this empty (what "before" means here, rather than a time)."""
    asked: list[object] = []
    real_open = Image.open

    def spy(*args: Any, **kwargs: Any) -> Image.Image:
        asked.append(args[0])
        return real_open(*args, **kwargs)
    monkeypatch.setattr(Image, "open", spy)
    return asked


def _photo(**kw: object) -> bytes:
    """A JPEG as cameras and editors write them (`kw`: Pillow's save options)."""
    buf = io.BytesIO()
    Image.effect_noise((320, 240), 60).convert("RGB").save(buf, "JPEG", **kw)
    return buf.getvalue()


def _segments_before_the_scan(count: int) -> bytes:
    """A real JPEG with `count` empty APP5 segments (4 bytes each) after its start."""
    return b"\xff\xd8" + b"\xff\xe5\x00\x02" * count + _photo()[2:]


# Each is a file of a few MB that Pillow, or the walk to the end marker, steps through
# one marker or one byte at a time in Python: 1,250,000 empty APP segments (5 MB: 3 s
# and +163 MB in the probe, ~27 s at 64 MB), 5 MB of fill bytes before the first
# segment (2.9 s), of escaped FF 00 pairs (2.6 s), and 1,250,000 comments after the
# scan, which only the walk reads (0.9 s).
HOSTILE_JPEGS = {
    "app-segments": (lambda: _segments_before_the_scan(1_250_000), "over 10,000 markers"),
    "fill-bytes": (lambda: b"\xff\xd8" + b"\xff" * 5_000_000 + _photo()[2:],
                   "over 1,048,576 bytes of padding between the markers of its headers"),
    "escaped-ff": (lambda: b"\xff\xd8" + b"\xff\x00" * 2_500_000 + _photo()[2:],
                   "over 10,000 markers"),
    "comments-after-the-scan": (
        lambda: _photo()[:-2] + b"\xff\xfe\x00\x02" * 1_250_000 + b"\xff\xd9",
        "over 10,000 markers"),
}


@pytest.mark.parametrize("case", HOSTILE_JPEGS.values(), ids=HOSTILE_JPEGS)
def test_a_jpeg_of_more_markers_than_a_camera_writes_is_refused_before_pillow_opens_it(
        opened: list[object], case: tuple[Any, str]) -> None:
    """The JPEG's markers are counted first, at C speed, and one over the limits is
    unreadable, saying which, before Pillow is asked to open it (asserted by the opens
    Pillow was asked for, not by time)."""
    make, said = case
    facts = probe_image(io.BytesIO(make()), "jpeg", 89_478_485)
    assert facts.error is not None and said in facts.error
    assert "damaged, or made to hold up whoever reads it" in facts.error
    assert opened == []


@pytest.mark.parametrize("case", [HOSTILE_JPEGS[k] for k in HOSTILE_JPEGS if "scan" not in k],
                         ids=[k for k in HOSTILE_JPEGS if "scan" not in k])
def test_a_jpeg_read_from_its_file_is_refused_by_its_headers_before_pillow_opens_it(
        tmp_path: Path, opened: list[object], case: tuple[Any, str]) -> None:
    """A JPEG over 64 MiB (an admin's max_attachment_bytes above that) is probed from
    its file, not from memory, and was not walked at all: Pillow read 64 MB of empty
    APP segments for 34 s and +2 GB. Its headers, up to the first scan (what Pillow
    reads), are counted from the file a window at a time. A small file stands in."""
    make, said = case
    path = tmp_path / "scan.jpg"
    path.write_bytes(make())
    with path.open("rb") as fh:
        facts = probe_image(fh, "jpeg", 89_478_485)
    assert facts.error is not None and said in facts.error
    assert opened == []
    path.write_bytes(_photo(progressive=True))
    with path.open("rb") as fh:
        assert probe_image(fh, "jpeg", 89_478_485).error is None


def test_real_jpegs_are_read() -> None:
    """Real JPEGs hold a dozen markers or a few dozen (progressive scans, EXIF, an ICC
    profile of 300 KB in five segments; restart markers are inside the scans and not
    counted), far below the limit."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    for data in (_photo(), _photo(progressive=True), _photo(restart_marker_blocks=1),
                 _photo(progressive=True, exif=exif, dpi=(300, 300),
                        icc_profile=icc + b"\0" * 300_000)):
        facts = probe_image(io.BytesIO(data), "jpeg", 89_478_485)
        assert (facts.error, [(f.width, f.height) for f in facts.frames]) == \
            (None, [(320, 240)])


def test_a_jpeg_of_exactly_the_markers_allowed_is_read_and_one_more_is_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is 10,000 markers, exactly that many allowed (the photo's own, its end
    marker included, and empty APP segments added)."""
    from daemon.validation import imagetail
    photo = _photo()
    own = 1
    with monkeypatch.context() as lowered:  # the photo's markers: the least limit it passes
        lowered.setattr(imagetail, "MAX_JPEG_MARKERS", own)
        while imagetail.jpeg_walk(io.BytesIO(photo)) is not True:
            own += 1
            lowered.setattr(imagetail, "MAX_JPEG_MARKERS", own)
    assert 5 < own < 30
    at_limit = probe_image(io.BytesIO(_segments_before_the_scan(10_000 - own)), "jpeg",
                           89_478_485)
    assert at_limit.error is None and len(at_limit.frames) == 1
    over = probe_image(io.BytesIO(_segments_before_the_scan(10_001 - own)), "jpeg",
                       89_478_485)
    assert over.error is not None and "over 10,000 markers" in over.error


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + \
        zlib.crc32(kind + data).to_bytes(4, "big")


def _png_in_chunks_of(size: int, before: bytes = b"") -> bytes:
    """A real PNG (noise, 600×400) whose image data is split into chunks of `size`
    bytes, `before` them (chunks) after its header."""
    buf = io.BytesIO()
    Image.effect_noise((600, 400), 60).convert("RGB").save(buf, "PNG")
    data, pos, idat = buf.getvalue(), 8, b""
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return (data[:33] + before + b"".join(_png_chunk(b"IDAT", idat[i:i + size])
                                          for i in range(0, len(idat), size))
            + _png_chunk(b"IEND", b""))


def test_a_png_of_more_chunks_than_an_image_holds_is_refused_before_pillow_opens_it(
        opened: list[object]) -> None:
    """A 5 MB PNG of 416,000 empty chunks (Pillow read them for 1.2 s and +45 MB, its
    check of their CRCs again) is unreadable, saying why, before Pillow is asked to open
    it; its image data split into chunks of 1 KB (more than any encoder writes) is
    read."""
    hostile = _png_in_chunks_of(65536, before=_png_chunk(b"zzZz", b"") * 416_000)
    facts = probe_image(io.BytesIO(hostile), "png", 89_478_485)
    assert facts.error is not None and "chunks (10,000 and one more per KiB" in facts.error
    assert opened == []
    for real in (_png_in_chunks_of(65536), _png_in_chunks_of(8192), _png_in_chunks_of(1024)):
        facts = probe_image(io.BytesIO(real), "png", 89_478_485)
        assert (facts.error, len(facts.frames)) == (None, 1)
    assert len(opened) == 3


def _gif_with(blocks: bytes, frames: int = 1) -> bytes:
    """A real GIF (noise, 120×80) with `blocks` before its image, and `frames` frames."""
    buf = io.BytesIO()
    images = [Image.effect_noise((120, 80), 60 + i).convert("P") for i in range(frames)]
    images[0].save(buf, "GIF", save_all=frames > 1, append_images=images[1:], duration=40)
    data = buf.getvalue()
    head = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    return data[:head] + blocks + data[head:]


GIF_FLOODS = {"comments": b"!\xfe\x01a\x00" * 1_000_000,
              "sub-blocks": b"!\xfe" + b"\x01a" * 2_500_000 + b"\x00"}


@pytest.mark.parametrize("blocks", GIF_FLOODS.values(), ids=GIF_FLOODS)
def test_a_gif_of_more_blocks_than_an_image_holds_is_refused_before_pillow_opens_it(
        tmp_path: Path, opened: list[object], blocks: bytes) -> None:
    """A 5 MB GIF of a million empty comments, or one comment of 2,500,000 sub-blocks
    (Pillow read them for 0.7 s and +170 MB, ~2 GB at 64 MB), is unreadable, saying
    why, before Pillow is asked to open it — held in memory or read from its file."""
    data = _gif_with(blocks)
    path = tmp_path / "anim.gif"
    path.write_bytes(data)
    with path.open("rb") as fh:
        for src in (io.BytesIO(data), fh):
            facts = probe_image(src, "gif", 89_478_485)
            assert facts.error is not None
            assert "blocks (10,000 and one more per 32 bytes of the file)" in facts.error
    assert opened == []


def test_real_gifs_are_read_and_a_gif_cut_short_is_still_told() -> None:
    """A GIF, an animation of 300 frames and one with a few comments are read; one cut
    short still is, as before."""
    for data in (_gif_with(b""), _gif_with(b"", frames=300),
                 _gif_with(b"!\xfe\x05hello\x00" * 20)):
        facts = probe_image(io.BytesIO(data), "gif", 89_478_485)
        assert (facts.error, facts.frames[0].width) == (None, 120)
    assert probe_image(io.BytesIO(_gif_with(b"")[:-300]), "gif", 89_478_485).error == \
        TRUNCATED


def test_every_cut_of_a_jpeg_in_its_headers_is_cut_short() -> None:
    """A JPEG copied only up to somewhere in its headers — inside a segment, between a
    marker and its length, or inside the two bytes of a length — is cut short, wherever
    the copy stopped; whole, it is not."""
    data = _photo()
    scan = data.index(b"\xff\xda")
    assert jpeg_walk(io.BytesIO(data)) is True
    for end in range(3, scan + 4):
        assert jpeg_walk(io.BytesIO(data[:end])) is False, end


def test_a_png_whose_chunks_the_share_fails_to_give_is_raised_not_taken_for_damaged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow checks a PNG's chunks from the file (one over what is read into memory):
    the share failing that read (EIO) is raised as it is (read again later), never
    "damaged", which refused a good image."""
    import errno
    import os

    from daemon.fs import fsops, namedreads
    from daemon.validation.imagetail import png_verified
    buf = io.BytesIO()
    Image.frombytes("L", (200, 200), os.urandom(200 * 200)).save(buf, "PNG")
    (tmp_path / "s.png").write_bytes(buf.getvalue())
    real = namedreads._readinto
    failing = [False]

    def share_fails(fh: Any, buffer: Any) -> int | None:
        if failing[0]:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(fh, buffer)
    monkeypatch.setattr(namedreads, "_readinto", share_fails)
    with fsops.open_regular(tmp_path / "s.png", "INV-1/s.png") as fh, Image.open(fh) as im:
        assert png_verified(im)  # the share answers: a good PNG
    with fsops.open_regular(tmp_path / "s.png", "INV-1/s.png") as fh, Image.open(fh) as im:
        failing[0] = True  # it goes away once the image is open
        with pytest.raises(OSError) as raised:
            png_verified(im)
    assert (raised.value.errno, raised.value.filename) == (errno.EIO, "INV-1/s.png")
