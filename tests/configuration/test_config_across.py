"""The checks of the configuration across keys (daemon/configuration/config_across.py):
[share] names an invoice pattern would take, a marker suffix named like an invoice file,
release and marker suffixes that overlap. Through load_settings, as an admin meets them."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import config_file, minimal, problems_of

from daemon.configuration.config_load import load_settings


def test_a_release_suffix_that_is_an_invoice_extension_is_refused_naming_both_keys(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[share] release_suffix = ".pdf" under the default invoice_patterns made the release
    file INV-1.pdf of INV-1.xml an invoice file itself, and every PDF invoice a release
    file, never sent. Refused at load (exit 2) in one line naming both keys and values and
    what to write instead, in any case of letters, from the environment too; a suffix
    with another extension passes."""
    for suffix in (".pdf", ".PDF", ".send.pdf"):
        text = minimal(outbox, f'[share]\nrelease_suffix = "{suffix}"\n')
        [line] = problems_of(config_file(tmp_path, text))
        assert line == (
            f"[share] release_suffix = '{suffix}' and [outbox] invoice_patterns = ['*.xml', "
            "'*.pdf']: the suffix ends in the extension of '*.pdf', so a release file "
            f"(NAME{suffix}) would be an invoice file itself and every invoice file ending so "
            "would be taken for a release, never sent — set release_suffix to a suffix whose "
            'extension no pattern names, e.g. ".send-anyway" (the default)')
    monkeypatch.setenv("OUTBOXD_SHARE__RELEASE_SUFFIX", ".xml")
    [line] = problems_of(config_file(tmp_path, minimal(outbox)))
    assert line.startswith("[share] release_suffix (from OUTBOXD_SHARE__RELEASE_SUFFIX) = "
                           "'.xml' and [outbox] invoice_patterns = ['*.xml', '*.pdf']: the "
                           "suffix ends in the extension of '*.xml'")
    monkeypatch.delenv("OUTBOXD_SHARE__RELEASE_SUFFIX")
    for fine in (".pdf-send", ".go"):
        text = minimal(outbox, f'[share]\nrelease_suffix = "{fine}"\n')
        assert load_settings(config_file(tmp_path, text)).share.release_suffix == fine


def test_a_status_page_named_like_an_invoice_file_is_refused_naming_both_keys(
        tmp_path: Path, outbox: Path) -> None:
    """[share] status_page = "status.xml" under the default invoice_patterns: an invoice a
    clerk drops as status.xml was never read (the page's name is never an invoice), and
    nobody was told. Refused at load in one line naming both keys and values and what to
    write instead. A name no pattern takes passes ("status.xml" under ["INV-*.xml"]), as
    does the default page name under ["*"], which names no extension."""
    [line] = problems_of(config_file(tmp_path, minimal(
        outbox, '[share]\nstatus_page = "Status.XML"\n')))
    assert line == ("[share] status_page = 'Status.XML' and [outbox] invoice_patterns = "
                    "['*.xml', '*.pdf']: '*.xml' takes the page's name for an invoice file's, "
                    "so an invoice dropped under that name would never be sent — give the "
                    'page a name no pattern takes, e.g. "outboxd-status.html" (the default), '
                    'or "" to turn it off')
    for patterns, page in (('["INV-*.xml"]', "status.xml"), ('["*"]', "outboxd-status.html")):
        text = minimal(outbox, f'[share]\nstatus_page = "{page}"\n').replace(
            "\n\n[delivery]", f"\ninvoice_patterns = {patterns}\n[delivery]")
        assert load_settings(config_file(tmp_path, text)).share.status_page == page


def test_a_marker_suffix_that_is_an_invoice_extension_is_refused_under_marker_completion(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[outbox] marker_suffix = ".xml" with completion = "marker" under the default
    invoice_patterns: a name ending in the marker suffix is never an invoice file, so
    every XML invoice waited unseen. Refused at load in one line naming the keys and
    values and what to write instead, in any case of letters, from the environment too.
    Under completion = "settle" no marker is looked for: the same suffix passes."""
    for suffix in (".xml", ".XML", ".ready.xml"):
        text = minimal(outbox).replace(
            "[outbox]\n", f'[outbox]\ncompletion = "marker"\nmarker_suffix = "{suffix}"\n', 1)
        [line] = problems_of(config_file(tmp_path, text))
        assert line == (
            f"[outbox] marker_suffix = '{suffix}' and [outbox] invoice_patterns = ['*.xml', "
            "'*.pdf'] under [outbox] completion = 'marker': the suffix ends in the extension "
            f"of '*.xml', so a marker (NAME{suffix}) would be named like an invoice file, and "
            "every invoice file ending so would be taken for a marker, never sent nor "
            'reported — set marker_suffix to a suffix whose extension no pattern names, e.g. '
            '".ready" (the default)')
    monkeypatch.setenv("OUTBOXD_OUTBOX__MARKER_SUFFIX", ".pdf")
    monkeypatch.setenv("OUTBOXD_OUTBOX__COMPLETION", "marker")
    [line] = problems_of(config_file(tmp_path, minimal(outbox)))
    assert line.startswith("[outbox] marker_suffix (from OUTBOXD_OUTBOX__MARKER_SUFFIX) = "
                           "'.pdf' and [outbox] invoice_patterns = ['*.xml', '*.pdf'] under "
                           "[outbox] completion (from OUTBOXD_OUTBOX__COMPLETION) = 'marker': "
                           "the suffix ends in the extension of '*.pdf'")
    monkeypatch.setenv("OUTBOXD_OUTBOX__COMPLETION", "settle")
    assert load_settings(config_file(tmp_path, minimal(outbox))).outbox.marker_suffix == ".pdf"
    monkeypatch.delenv("OUTBOXD_OUTBOX__MARKER_SUFFIX")
    monkeypatch.delenv("OUTBOXD_OUTBOX__COMPLETION")
    for fine in (".xml-ready", ".ready"):
        text = minimal(outbox).replace(
            "[outbox]\n", f'[outbox]\ncompletion = "marker"\nmarker_suffix = "{fine}"\n', 1)
        assert load_settings(config_file(tmp_path, text)).outbox.marker_suffix == fine


def _marker_mode(outbox: Path, release: str, marker: str) -> str:
    return minimal(outbox, f'[share]\nrelease_suffix = "{release}"\n').replace(
        "[outbox]\n", f'[outbox]\ncompletion = "marker"\nmarker_suffix = "{marker}"\n', 1)


@pytest.mark.parametrize(("release", "marker", "how", "ending"), [
    (".ready", ".ready", "are the same suffix", ".ready"),
    (".Ready", ".ready", "are the same suffix but for upper and lower case", ".ready"),
    (".go.ready", ".READY", "overlap: the release suffix ends in the marker suffix",
     ".go.ready"),
    (".go", ".done.go", "overlap: the marker suffix ends in the release suffix", ".done.go"),
    (".send-anyway", "y", "overlap: the release suffix ends in the marker suffix",
     ".send-anyway"),
])
def test_a_release_suffix_and_marker_suffix_that_overlap_are_refused_under_marker_completion(
        tmp_path: Path, outbox: Path, release: str, marker: str, how: str,
        ending: str) -> None:
    """[share] release_suffix and [outbox] marker_suffix equal, or one ending the other in
    any case of letters, under completion = "marker": a root file ending in the longer
    was a release file and a marker at once (the ERP's marker could release an invoice
    without its attachments; the page listed it as an idle release and as a marker's near
    miss). Refused at load in one line naming both keys and values, why and the fix."""
    [line] = problems_of(config_file(tmp_path, _marker_mode(outbox, release, marker)))
    assert line == (
        f"[share] release_suffix = '{release}' and [outbox] marker_suffix = '{marker}' under "
        f"[outbox] completion = 'marker' {how}, so a file whose name ends in '{ending}' "
        "would be both a release file and a marker: a marker the ERP writes could send an "
        "invoice without its attachments, and a clerk's release could mark a bundle ready "
        "before it is whole — give them suffixes neither of which ends the other, in any "
        'case of letters, e.g. release_suffix = ".send-anyway" and marker_suffix = '
        '".ready" (the defaults)')


def test_suffixes_that_do_not_overlap_or_a_marker_not_looked_for_pass(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Suffixes of which neither ends the other pass under completion = "marker" (one
    inside the other but not at its end too); under "settle" no marker is looked for,
    so a release suffix equal to the (unused) marker suffix passes — and the environment
    that turns marker mode on names its variable in the refusal."""
    for release, marker in ((".send-anyway", ".ready"), (".ready-now", ".ready"),
                            (".go", ".go-ready")):
        s = load_settings(config_file(tmp_path, _marker_mode(outbox, release, marker)))
        assert (s.share.release_suffix, s.outbox.marker_suffix) == (release, marker)
    text = minimal(outbox, '[share]\nrelease_suffix = ".ready"\n')
    assert load_settings(config_file(tmp_path, text)).share.release_suffix == ".ready"
    monkeypatch.setenv("OUTBOXD_OUTBOX__COMPLETION", "marker")
    [line] = problems_of(config_file(tmp_path, text))
    assert line.startswith("[share] release_suffix = '.ready' and [outbox] marker_suffix = "
                           "'.ready' under [outbox] completion (from "
                           "OUTBOXD_OUTBOX__COMPLETION) = 'marker' are the same suffix")


_CLASH = ("that outboxd makes beside the invoice file for {holds}, and the {what} is moved "
          "into the bundle's work folder with it, so that folder could not be made and the "
          "bundle would be retried for ever — set {key} to a suffix that names none of "
          "outboxd's own folders (NAME.embedded/, NAME.converted/) in any case of letters, "
          "e.g. {default}")
_EMBEDDED = 'the documents it sends under [delivery] format = "ubl-embedded"'
_CONVERTED = "the PDFs [validation] convert_images makes of the sidecar's images"


@pytest.mark.parametrize(("section", "key", "value", "folder", "how", "holds"), [
    ("outbox", "marker_suffix", ".embedded", "NAME.embedded", "is", _EMBEDDED),
    ("outbox", "marker_suffix", ".Converted", "NAME.converted",
     "is, but for upper and lower case (one name on a share that ignores case),", _CONVERTED),
    ("share", "release_suffix", ".EMBEDDED", "NAME.embedded",
     "is, but for upper and lower case (one name on a share that ignores case),", _EMBEDDED),
    ("share", "release_suffix", ".converted", "NAME.converted", "is", _CONVERTED),
])
def test_a_marker_or_release_suffix_naming_outboxd_s_own_folder_is_refused(
        tmp_path: Path, outbox: Path, section: str, key: str, value: str, folder: str,
        how: str, holds: str) -> None:
    """A marker or release file named NAME.embedded or NAME.converted (in any case of
    letters) is moved into the work folder with the bundle and takes the name of the
    folder outboxd makes there for ubl-embedded's documents or convert_images' PDFs:
    keep() failed with ENOTDIR and the bundle was retried for ever. Refused at load in
    one line naming the key, the value, the folder it clashes with, why and the fix."""
    text = minimal(outbox).replace("[outbox]\n", '[outbox]\ncompletion = "marker"\n', 1)
    text = text.replace(f"[{section}]\n", f'[{section}]\n{key} = "{value}"\n', 1) \
        if f"[{section}]" in text else text + f'[{section}]\n{key} = "{value}"\n'
    [line] = problems_of(config_file(tmp_path, text))
    what = {"marker_suffix": "marker", "release_suffix": "release file"}[key]
    default = {"marker_suffix": '".ready"', "release_suffix": '".send-anyway"'}[key]
    assert line == (f"[{section}] {key} = '{value}': the {what} (NAME{value}) {how} the name "
                    f"of the folder {folder}/ " + _CLASH.format(
                        holds=holds, what=what, key=key, default=default + " (the default)"))


def test_a_marker_suffix_that_names_the_converted_folder_beside_a_suffixed_sidecar_is_refused(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The PDFs' folder is the sidecar's name + ".converted": under sidecar_suffix =
    ".files" the marker suffix ".files.converted" clashes with it (and ".converted" does
    not), the environment's variable named where it set the key."""
    monkeypatch.setenv("OUTBOXD_OUTBOX__MARKER_SUFFIX", ".FILES.converted")
    text = minimal(outbox).replace(
        "[outbox]\n", '[outbox]\ncompletion = "marker"\nsidecar_suffix = ".files"\n', 1)
    [line] = problems_of(config_file(tmp_path, text))
    assert line.startswith("[outbox] marker_suffix (from OUTBOXD_OUTBOX__MARKER_SUFFIX) = "
                           "'.FILES.converted': the marker (NAME.FILES.converted) is, but for "
                           "upper and lower case (one name on a share that ignores case), "
                           "the name of the folder NAME.files.converted/ ")
    assert "(NAME.embedded/, NAME.files.converted/)" in line
    monkeypatch.setenv("OUTBOXD_OUTBOX__MARKER_SUFFIX", ".converted")
    assert load_settings(config_file(tmp_path, text)).outbox.marker_suffix == ".converted"


def test_a_sidecar_suffix_naming_the_embedded_folder_but_for_case_is_refused(
        tmp_path: Path, outbox: Path) -> None:
    """sidecar_suffix = ".Embedded": outboxd keeps ubl-embedded's documents in
    NAME.embedded/, which a share that ignores case takes for the sidecar NAME.Embedded/,
    so the documents landed among the attachments. Refused naming the key and both fixes;
    exactly ".embedded" passes (outboxd steps aside to NAME.embedded.embedded/)."""
    text = minimal(outbox).replace("[outbox]\n", '[outbox]\nsidecar_suffix = ".Embedded"\n', 1)
    [line] = problems_of(config_file(tmp_path, text))
    assert line == (
        "[outbox] sidecar_suffix = '.Embedded': the sidecar (NAME.Embedded) is, but for upper "
        "and lower case (one name on a share that ignores case), the name of the folder "
        f"NAME.embedded/ that outboxd makes beside the invoice file for {_EMBEDDED}, so the "
        "documents outboxd keeps would land in the sidecar — set sidecar_suffix = "
        '".embedded" exactly (the documents then go to NAME.embedded.embedded/) or another '
        'suffix, e.g. "" (the default) or ".files"')
    text = minimal(outbox).replace("[outbox]\n", '[outbox]\nsidecar_suffix = ".embedded"\n', 1)
    assert load_settings(config_file(tmp_path, text)).outbox.sidecar_suffix == ".embedded"


def test_suffixes_near_outboxd_s_own_folders_or_a_marker_not_looked_for_pass(
        tmp_path: Path, outbox: Path) -> None:
    """Only the folders' very names are refused: ".embedded-ready" and ".converted.go"
    pass, and under completion = "settle" a marker suffix ".embedded" passes (no marker
    is looked for, nor moved into the work folder)."""
    for marker, release in ((".embedded-ready", ".converted.go"), (".ready", ".send-anyway")):
        text = _marker_mode(outbox, release, marker)
        s = load_settings(config_file(tmp_path, text))
        assert (s.outbox.marker_suffix, s.share.release_suffix) == (marker, release)
    text = minimal(outbox).replace("[outbox]\n", '[outbox]\nmarker_suffix = ".embedded"\n', 1)
    assert load_settings(config_file(tmp_path, text)).outbox.marker_suffix == ".embedded"


@pytest.mark.parametrize(("section", "key", "value", "sidecar"), [
    ("outbox", "marker_suffix", ".ready", ".ready"),
    ("share", "release_suffix", ".files", ".FILES"),
])
def test_a_sidecar_suffix_that_is_the_marker_or_release_suffix_is_refused(
        tmp_path: Path, outbox: Path, section: str, key: str, value: str,
        sidecar: str) -> None:
    """sidecar_suffix = ".ready" under completion = "marker" (or the release suffix, in
    any case of letters): the sidecar folder and the marker (release file) want one name,
    NAME.ready both a folder of attachments and a file beside it — one of them cannot be
    made, and the bundle waits for ever. Refused at load, naming both keys and the fix."""
    text = minimal(outbox).replace(
        "[outbox]\n", f'[outbox]\ncompletion = "marker"\nsidecar_suffix = "{sidecar}"\n', 1)
    text = text.replace(f"[{section}]\n", f'[{section}]\n{key} = "{value}"\n', 1) \
        if f"[{section}]" in text else text + f'[{section}]\n{key} = "{value}"\n'
    [line] = problems_of(config_file(tmp_path, text))
    assert line.startswith(f"[outbox] sidecar_suffix = '{sidecar}' and [{section}] {key} = "
                           f"'{value}'")
    assert "cannot be made" in line and "give them different suffixes" in line


def test_a_sidecar_suffix_that_is_an_invoice_extension_is_refused_naming_both_keys(
        tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sidecar_suffix = ".xml" under the default invoice_patterns made the sidecar of
    INV-1.xml the name INV-1.xml, the invoice file itself: every XML invoice was refused
    as "the sidecar is not a folder" and quarantined, and no folder of attachments could
    be put beside it. Refused at load in one line naming both keys, the pattern and the
    fix, in any case of letters, from the environment too; a suffix that only ends in the
    extension (".files.xml", another name) or holds no dot passes."""
    for suffix, pattern in ((".xml", "*.xml"), (".PDF", "*.pdf")):
        text = minimal(outbox).replace("[outbox]\n", f'[outbox]\nsidecar_suffix = "{suffix}"\n',
                                       1)
        [line] = problems_of(config_file(tmp_path, text))
        assert line == (
            f"[outbox] sidecar_suffix = '{suffix}' and [outbox] invoice_patterns = ['*.xml', "
            f"'*.pdf']: the suffix is the extension of '{pattern}', so the sidecar of an "
            f"invoice file NAME{suffix} would be NAME{suffix}, the invoice file itself (in "
            "any case of letters on a share that ignores case): no folder of attachments "
            "could be put beside it, and each such invoice would be refused as its own "
            'sidecar, "not a folder" — give the sidecar folders a suffix that is no invoice '
            'file\'s extension, e.g. sidecar_suffix = "" (the default) or ".files"')
    monkeypatch.setenv("OUTBOXD_OUTBOX__SIDECAR_SUFFIX", ".xml")
    [line] = problems_of(config_file(tmp_path, minimal(outbox)))
    assert line.startswith("[outbox] sidecar_suffix (from OUTBOXD_OUTBOX__SIDECAR_SUFFIX) = "
                           "'.xml' and [outbox] invoice_patterns = ['*.xml', '*.pdf']")
    monkeypatch.delenv("OUTBOXD_OUTBOX__SIDECAR_SUFFIX")
    for fine in (".files.xml", "xml", ".files"):
        text = minimal(outbox).replace("[outbox]\n", f'[outbox]\nsidecar_suffix = "{fine}"\n',
                                       1)
        assert load_settings(config_file(tmp_path, text)).outbox.sidecar_suffix == fine


@pytest.mark.parametrize(("setting", "marker", "named"), [
    ('[share]\nstatus_page = "x.send-anyway"\n', False,
     "[share] status_page = 'x.send-anyway' and [share] release_suffix = '.send-anyway'"),
    ('[share]\nrelease_suffix = ".HTML"\n', False,
     "[share] status_page = 'outboxd-status.html' and [share] release_suffix = '.HTML'"),
    ('[share]\nstatus_page = "x.ready"\n', True,
     "[share] status_page = 'x.ready' and [outbox] marker_suffix = '.ready'"),
])
def test_a_status_page_named_as_a_release_file_or_marker_is_refused(
        tmp_path: Path, outbox: Path, setting: str, marker: bool, named: str) -> None:
    """status_page = "x.send-anyway" (tried with unattached = "hold"): outboxd's own page
    was the release file of x.xml, sent it without attachments ("released by
    x.send-anyway") and was archived in sent/ with it; so for a release suffix the default
    page name ends in (".HTML", any case), and, under completion = "marker", a page named
    as a marker. Refused at load naming both keys and the fix; under "settle" a page
    ending in the marker suffix passes (no marker is looked for)."""
    text = minimal(outbox, setting)
    if marker:
        text = text.replace("[outbox]\n", '[outbox]\ncompletion = "marker"\n', 1)
    [line] = problems_of(config_file(tmp_path, text))
    assert line.startswith(named + ": the page's name ends in the suffix")
    assert "give the page another name" in line
    if marker:
        assert load_settings(config_file(tmp_path, minimal(outbox, setting))
                             ).share.status_page == "x.ready"


@pytest.mark.parametrize(("setting", "marker", "named"), [
    ('[share]\nrelease_suffix = ".errors.txt"\n', False,
     "[share] release_suffix = '.errors.txt'"),
    ('[outbox]\nsidecar_suffix = ".Errors.TXT"\n', False,
     "[outbox] sidecar_suffix = '.Errors.TXT'"),
    ('[share]\nstatus_page = "x.errors.txt"\n', False, "[share] status_page = 'x.errors.txt'"),
    ('[outbox]\nmarker_suffix = ".done.errors.txt"\n', True,
     "[outbox] marker_suffix = '.done.errors.txt'"),
])
def test_a_name_ending_as_outboxds_errors_file_is_refused(
        tmp_path: Path, outbox: Path, setting: str, marker: bool, named: str) -> None:
    """outboxd writes NAME.errors.txt beside an invoice file it holds back: under
    release_suffix = ".errors.txt" its own errors file would be taken for a release of the
    bundle it explains, one no clerk gave; a sidecar, page or marker (under
    completion = "marker") ending so would want that file's name. Refused at load naming
    the key and the fix; under "settle" such a marker suffix is let be."""
    section = setting.split("]")[0] + "]\n"
    text = minimal(outbox).replace(section, setting, 1) if section in minimal(outbox) \
        else minimal(outbox) + setting
    if marker:
        text = text.replace("[outbox]\n", '[outbox]\ncompletion = "marker"\n', 1)
    [line] = problems_of(config_file(tmp_path, text))
    assert line.startswith(named + ": the ")
    assert "'.errors.txt'" in line and "NAME.errors.txt" in line
    if marker:
        settle = text.replace('completion = "marker"\n', "", 1)
        assert load_settings(config_file(tmp_path, settle)).outbox.marker_suffix \
            == ".done.errors.txt"
