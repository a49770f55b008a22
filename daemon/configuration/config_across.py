"""The checks of a configuration across keys, once each key is valid alone: [share] names
that [outbox] invoice_patterns would take for invoice files', a status page named as a
release file or marker, a marker suffix named like
an invoice file, a release suffix and a marker suffix of which one ends the other, a
suffix that names one of outboxd's own folders beside the invoice file, a sidecar suffix
that is the marker or release suffix or an invoice file's extension, a suffix or page
name that is outboxd's own errors file's (NAME.errors.txt), more reader processes than the
host takes with or without the e-invoice rules (config_readers.py). Each problem one
line naming every key involved and the fix (config_load.py raises them)."""

from __future__ import annotations

import unicodedata
from typing import Any

from daemon.configuration.config import Settings
from daemon.configuration.config_keys import env_origin, value_shown
from daemon.configuration.config_overlap import folder_overlap_problems
from daemon.configuration.config_readers import reader_problems
from daemon.errors import unquoted
from daemon.names import (
    ERRORS_SUFFIX,
    converted_folder,
    embedded_folder,
    extension_pattern,
    is_invoice_name,
)


def across_problems(settings: Settings, env: dict[str, dict[str, Any]]) -> list[str]:
    """Every problem across keys; `env`: the environment's overrides (config.
    environment_overrides), for the keys it set."""
    return (share_name_problems(settings, env) + marker_problems(settings, env)
            + suffix_overlap_problems(settings, env) + own_folder_problems(settings, env)
            + sidecar_file_problems(settings, env) + sidecar_extension_problems(settings, env)
            + errors_file_problems(settings, env) + folder_overlap_problems(settings, env)
            + reader_problems(settings, env))


def share_name_problems(settings: Settings, env: dict[str, dict[str, Any]]) -> list[str]:
    """[share] names that [outbox] invoice_patterns would take for invoice files'. Such a
    name is never read as an invoice (names.is_share_file): under release_suffix = ".pdf"
    every PDF invoice would wait for good, taken for a release file."""
    share, patterns = settings.share, settings.outbox.invoice_patterns
    both = f"[outbox] invoice_patterns{env_origin('outbox', 'invoice_patterns', env)} = " \
        f"{value_shown('invoice_patterns', patterns)}"
    problems: list[str] = []
    if taken := extension_pattern(share.release_suffix, patterns):
        problems.append(
            f"[share] release_suffix{env_origin('share', 'release_suffix', env)} = "
            f"{value_shown('release_suffix', share.release_suffix)} and {both}: the suffix ends in "
            f"the extension of {value_shown('invoice_patterns', taken)}, so a release file "
            f"(NAME{unquoted(share.release_suffix)}) would be an invoice file itself and "
            "every invoice file ending so would be taken for a release, never sent — set "
            "release_suffix to a suffix whose extension no pattern names, e.g. "
            '".send-anyway" (the default)')
    page = share.status_page
    if page and (taken := next((p for p in patterns if extension_pattern(page, [p]) and
                                is_invoice_name(page, [p], settings.outbox.ignore_patterns)),
                               None)):
        problems.append(
            f"[share] status_page{env_origin('share', 'status_page', env)} = "
            f"{value_shown('status_page', page)} and {both}: "
            f"{value_shown('invoice_patterns', taken)} "
            "takes the page's name for an invoice file's, so an invoice dropped under that "
            "name would never be sent — give the page a name no pattern takes, e.g. "
            '"outboxd-status.html" (the default), or "" to turn it off')
    # The page lies in the outbox root beside the invoice files: named NAME + the release
    # suffix (or, under completion = "marker", the marker suffix), outboxd's own page was
    # the release file (the marker) of the invoice NAME.xml, sent it without attachments
    # (marked it ready) and was moved into the archive with it.
    files = [("release_suffix", "share", "release file", share.release_suffix)]
    if settings.outbox.completion == "marker":
        files.append(("marker_suffix", "outbox", "marker", settings.outbox.marker_suffix))
    for key, section, what, suffix in files:
        if page and len(page) > len(suffix) and _folded(page).endswith(_folded(suffix)):
            problems.append(
                f"[share] status_page{env_origin('share', 'status_page', env)} = "
                f"{value_shown('status_page', page)} and [{section}] {key}"
                f"{env_origin(section, key, env)} = {value_shown(key, suffix)}: the page's "
                f"name ends in the suffix (in any case of letters), so outboxd's own page "
                f"would be the {what} of an invoice file "
                f"{unquoted(page[:len(page) - len(suffix)])}.xml and be moved away with it "
                f"— give the page another name or {key} another suffix, e.g. status_page = "
                f'"outboxd-status.html" and {key} = {_DEFAULTS[key]}')
    return problems


def marker_problems(settings: Settings, env: dict[str, dict[str, Any]]) -> list[str]:
    """[outbox] marker_suffix ending in an extension invoice_patterns names, under
    completion = "marker": a name ending in the marker suffix is then never an invoice
    file (scan.is_invoice_file), so with ".xml" every XML invoice would wait unseen.
    Under "settle" no marker is looked for, and the suffix is let be."""
    out = settings.outbox
    if out.completion != "marker" or not (
            taken := extension_pattern(out.marker_suffix, out.invoice_patterns)):
        return []
    return [
        f"[outbox] marker_suffix{env_origin('outbox', 'marker_suffix', env)} = "
        f"{value_shown('marker_suffix', out.marker_suffix)} and [outbox] invoice_patterns"
        f"{env_origin('outbox', 'invoice_patterns', env)} = "
        f"{value_shown('invoice_patterns', out.invoice_patterns)} under [outbox] completion"
        f"{env_origin('outbox', 'completion', env)} = 'marker': "
        f"the suffix ends in the extension of {value_shown('invoice_patterns', taken)}, so a "
        f"marker (NAME{unquoted(out.marker_suffix)}) would be named like an invoice file, "
        "and every invoice file ending so would be taken for a marker, never sent nor "
        "reported — set "
        "marker_suffix to a suffix whose extension no pattern names, e.g. \".ready\" (the "
        "default)"]


def suffix_overlap_problems(settings: Settings, env: dict[str, dict[str, Any]]) -> list[str]:
    """[share] release_suffix and [outbox] marker_suffix that overlap under completion =
    "marker": equal, or one ending the other, in any case of letters and Unicode form (a
    share may fold case; a clerk's near miss is matched so). A root file ending in the
    longer is then a release file and a marker at once: the ERP's marker could release an
    invoice without its attachments, and the page listed one file both as an idle release
    and as a marker's near miss. Under "settle" no marker is looked for."""
    out, release = settings.outbox, settings.share.release_suffix
    marker = out.marker_suffix
    if out.completion != "marker":
        return []
    folded = {"release": _folded(release), "marker": _folded(marker)}
    shorter, longer = sorted(folded, key=lambda k: len(folded[k]))
    if not folded[longer].endswith(folded[shorter]):
        return []
    how = ("are the same suffix" if release == marker else
           "are the same suffix but for upper and lower case"
           if folded[longer] == folded[shorter] else
           f"overlap: the {longer} suffix ends in the {shorter} suffix")
    ending = release if longer == "release" else marker
    return [
        f"[share] release_suffix{env_origin('share', 'release_suffix', env)} = "
        f"{value_shown('release_suffix', release)} and [outbox] marker_suffix"
        f"{env_origin('outbox', 'marker_suffix', env)} = {value_shown('marker_suffix', marker)} "
        f"under [outbox] completion{env_origin('outbox', 'completion', env)} = 'marker' {how}, "
        f"so a file whose name ends in {value_shown('suffix', ending)} would be both a release "
        "file and a marker: a marker the ERP writes could send an invoice without its "
        "attachments, and a clerk's release could mark a bundle ready before it is "
        "whole — give them suffixes neither of which ends the other, in any case of "
        'letters, e.g. release_suffix = ".send-anyway" and marker_suffix = ".ready" (the '
        "defaults)"]


# Any stem: outboxd's own folders, and the sidecar, marker and release file, are all named
# by appending to the invoice file's stem, so one stem shows every clash.
_STEM = "NAME"
_DEFAULTS = {"sidecar_suffix": '"" (the default) or ".files"',
             "marker_suffix": '".ready" (the default)',
             "release_suffix": '".send-anyway" (the default)'}


def own_folder_problems(settings: Settings, env: dict[str, dict[str, Any]]) -> list[str]:
    """A sidecar, marker or release suffix that gives its file or folder the name of one
    outboxd makes beside the invoice file in the work folder and the archive entry
    (NAME.embedded/ for ubl-embedded's documents, NAME.converted/ for convert_images'
    PDFs), in any case of letters and Unicode form (a share may ignore case). The marker
    and the release file are moved into the work folder with the bundle: the folder
    could not be made there (ENOTDIR), and the bundle was retried for ever; a sidecar
    named so on a share that ignores case had the kept documents land among its
    attachments. The marker only under completion = "marker", as nothing else moves it."""
    out = settings.outbox
    sidecar = _STEM + out.sidecar_suffix
    own = ((embedded_folder(_STEM + ".xml", sidecar),
            'the documents it sends under [delivery] format = "ubl-embedded"'),
           (converted_folder(sidecar), "the PDFs [validation] convert_images makes of the "
                                       "sidecar's images"))
    mine = [("outbox", "sidecar_suffix", "sidecar", out.sidecar_suffix),
            ("share", "release_suffix", "release file", settings.share.release_suffix)]
    if out.completion == "marker":
        mine.insert(1, ("outbox", "marker_suffix", "marker", out.marker_suffix))
    problems: list[str] = []
    for section, key, what, suffix in mine:
        name = _STEM + suffix
        for folder, holds in own:
            if _folded(name) != _folded(folder):
                continue
            # embedded_folder steps aside from a sidecar of exactly its name, not from
            # one a share that ignores case takes for it.
            how = ("is" if name == folder else
                   "is, but for upper and lower case (one name on a share that ignores "
                   "case),")
            fix = (f'set {key} = "{unquoted(folder[len(_STEM):])}" exactly (the documents '
                   f"then go to NAME{unquoted(folder[len(_STEM):])}.embedded/) or another "
                   f"suffix, e.g. {_DEFAULTS[key]}"
                   if key == "sidecar_suffix" else
                   f"set {key} to a suffix that names none of outboxd's own folders "
                   f"(NAME{unquoted(own[0][0][len(_STEM):])}/, "
                   f"NAME{unquoted(own[1][0][len(_STEM):])}/) in any case of letters, "
                   f"e.g. {_DEFAULTS[key]}")
            moved = ("" if key == "sidecar_suffix" else
                     f", and the {what} is moved into the bundle's work folder with it")
            problems.append(
                f"[{section}] {key}{env_origin(section, key, env)} = "
                f"{value_shown(key, suffix)}: the {what} (NAME{unquoted(suffix)}) {how} the "
                f"name of the folder {unquoted(folder)}/ that outboxd makes beside the "
                f"invoice file for {holds}{moved}, so "
                + ("the documents outboxd keeps would land in the sidecar"
                   if key == "sidecar_suffix" else
                   "that folder could not be made and the bundle would be retried for ever")
                + f" — {fix}")
    return problems


def sidecar_file_problems(settings: Settings, env: dict[str, dict[str, Any]]) -> list[str]:
    """A sidecar suffix that is the marker suffix (under completion = "marker") or the
    release suffix, in any case of letters: NAME.ready would be both the folder of
    attachments and the file beside it, one of them cannot be made, and the bundle
    waits for ever."""
    out = settings.outbox
    if not out.sidecar_suffix:
        return []
    others = [("share", "release_suffix", "release file", settings.share.release_suffix)]
    if out.completion == "marker":
        others.insert(0, ("outbox", "marker_suffix", "marker", out.marker_suffix))
    return [
        f"[outbox] sidecar_suffix{env_origin('outbox', 'sidecar_suffix', env)} = "
        f"{value_shown('sidecar_suffix', out.sidecar_suffix)} and [{section}] {key}"
        f"{env_origin(section, key, env)} = {value_shown(key, suffix)}: the sidecar folder "
        f"and the {what} would have one name (NAME{unquoted(suffix)}, in any case of "
        "letters on a share that ignores case), a folder of attachments and a file beside "
        f"it, so one of them cannot be made and the bundle would wait for ever — give them "
        f"different suffixes, e.g. sidecar_suffix = {_DEFAULTS['sidecar_suffix']} and "
        f"{key} = {_DEFAULTS[key]}"
        for section, key, what, suffix in others
        if _folded(suffix) == _folded(out.sidecar_suffix)]


def sidecar_extension_problems(settings: Settings,
                               env: dict[str, dict[str, Any]]) -> list[str]:
    """A sidecar suffix that is a dot and an extension invoice_patterns names (".xml", in
    any case of letters): the sidecar of NAME.xml is then NAME.xml, the invoice file
    itself. Every invoice file of that extension was read as its own sidecar, "not a
    folder", and quarantined (or held) with a fix nobody could follow; no folder of
    attachments could ever be put beside it. A suffix with more than that extension
    (".files.xml") names another name than the invoice file's, and is let be."""
    out = settings.outbox
    suffix = out.sidecar_suffix
    if not suffix.startswith(".") or "." in suffix[1:] or not (
            taken := extension_pattern(_STEM + suffix, out.invoice_patterns)):
        return []
    return [
        f"[outbox] sidecar_suffix{env_origin('outbox', 'sidecar_suffix', env)} = "
        f"{value_shown('sidecar_suffix', suffix)} and [outbox] invoice_patterns"
        f"{env_origin('outbox', 'invoice_patterns', env)} = "
        f"{value_shown('invoice_patterns', out.invoice_patterns)}: the suffix is the "
        f"extension of {value_shown('invoice_patterns', taken)}, so the sidecar of an "
        f"invoice file NAME{unquoted(suffix)} would be NAME{unquoted(suffix)}, the invoice "
        "file itself (in any case of letters on a share that ignores case): no folder of "
        "attachments could be put beside it, and each such invoice would be refused as "
        "its own sidecar, \"not a folder\" — give the sidecar folders a suffix that is no "
        f"invoice file's extension, e.g. sidecar_suffix = {_DEFAULTS['sidecar_suffix']}"]


def errors_file_problems(settings: Settings, env: dict[str, dict[str, Any]]) -> list[str]:
    """A sidecar, release or marker suffix, or a status page name, ending in ".errors.txt"
    (any case): outboxd writes NAME.errors.txt beside an invoice file it holds back
    (errorsfile.py). Its own errors file would then be taken for a release file or marker
    of the bundle it explains, one no clerk gave, and a clerk's for outboxd's; or want the
    sidecar's name, or the page's. The
    marker only under completion = "marker", as nothing else looks for one."""
    out, share = settings.outbox, settings.share
    named = [("outbox", "sidecar_suffix", "sidecar folder", out.sidecar_suffix),
             ("share", "release_suffix", "release file", share.release_suffix),
             ("share", "status_page", "status page", share.status_page)]
    if out.completion == "marker":
        named.insert(1, ("outbox", "marker_suffix", "marker", out.marker_suffix))
    errors = _folded(ERRORS_SUFFIX)
    return [
        f"[{section}] {key}{env_origin(section, key, env)} = {value_shown(key, value)}: "
        f"the {what}'s name ends in {ERRORS_SUFFIX!r} (in any case of letters), the "
        f"ending of the errors file outboxd writes beside an invoice file it holds back "
        f"(NAME{ERRORS_SUFFIX}), so outboxd's own file and the {what} would take one "
        "another's name — "
        + (f"set {key} to a suffix that does not end so, e.g. {_DEFAULTS[key]}"
           if key in _DEFAULTS else
           'give the page another name, e.g. "outboxd-status.html" (the default)')
        for section, key, what, value in named
        if value and _folded(value).endswith(errors)]


def _folded(suffix: str) -> str:
    """A suffix as a share that ignores case, and a clerk's near miss, see it."""
    return unicodedata.normalize("NFC", suffix).casefold()
