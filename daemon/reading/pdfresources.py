"""Where pypdf's text extraction finds a page's or a form's resources (pdftext.TextBudget
reads it): the /Resources of a page that has none of its own, up its /Parent chain, and
the bytes pypdf parses in them for every page and every form it draws: the fonts'
character maps."""

from __future__ import annotations

from typing import Any


class Inherited:
    """The /Resources each node of the page tree passes down by /Parent, by the node's
    reference (None: none), each node looked at once for all its pages (one per file)."""

    def __init__(self) -> None:
        self._found: dict[tuple[int, int], Any] = {}

    def put_on(self, page: Any) -> None:
        """The /Resources pypdf would find for `page` up its /Parent chain, put on the
        page itself, where pypdf looks first (None found: none put).

        pypdf's list of pages already copies what the nodes above a page hold into it,
        so this is for a page that has none there. pypdf's own look up the /Parent chain
        (get_inherited) parses each node above again for every page, since the objects
        pypdf resolved are dropped page by page (invoices.py): for pages under one node
        of n pages, n parses of n entries — 2,000 pages without resources took 6 s, and
        20,000 the reader's time limit. Looked at once per node here."""
        from pypdf.generic import DictionaryObject, IndirectObject, NameObject
        above = page.get("/Parent")
        passed: list[tuple[int, int]] = []
        seen: set[tuple[int, int]] = set()
        found = None
        while above is not None:
            key = (above.idnum, above.generation) if isinstance(above, IndirectObject) \
                else None
            if key is not None:
                if key in self._found:
                    found = self._found[key]
                    break
                if key in seen:  # a chain that loops: pypdf raises, and reads nothing
                    break
                seen.add(key)
                passed.append(key)
            try:
                node = above.get_object()
            except Exception:  # noqa: BLE001 — a damaged node: pypdf reads nothing either
                break
            if not isinstance(node, DictionaryObject):
                break
            if "/Resources" in node:
                found = dict.__getitem__(node, "/Resources")  # as written: a reference is kept
                break
            above = node.get("/Parent")
        for key in passed:
            self._found[key] = found
        if found is not None:
            page[NameObject("/Resources")] = found


def resources_of(obj: Any) -> Any | None:
    """A page's or form's resources as pypdf's search takes them (a page's inherited
    ones put on it by pypdf's list of pages or Inherited.put_on); None when there are
    none or they are no dictionary."""
    from pypdf.generic import DictionaryObject
    try:
        found = obj.get("/Resources")
        found = found.get_object() if found is not None else None
    except Exception:  # noqa: BLE001 — damaged: pypdf takes it for none too
        return None
    return found if isinstance(found, DictionaryObject) and found else None


def maps_size(resources: Any) -> int:
    """The decoded bytes of the character maps (/ToUnicode streams) of the fonts of
    `resources` (a page's or a form's, a dictionary), which pypdf parses line by line in
    Python for every font there each time it reads the page or draws the form, whether
    or not any text is shown in it (a form drawn 50 times, in resources naming a font
    whose map was 143 KB, took pypdf 5 s)."""
    from pypdf.generic import DictionaryObject, StreamObject
    try:
        fonts = resources.get("/Font")
        fonts = fonts.get_object() if fonts is not None else None
    except Exception:  # noqa: BLE001 — damaged: pypdf makes no font of it
        return 0
    size = 0
    for ref in fonts.values() if isinstance(fonts, DictionaryObject) else ():
        try:
            font = ref.get_object()
            cmap = font.get("/ToUnicode") if isinstance(font, DictionaryObject) else None
            cmap = cmap.get_object() if cmap is not None else None
            if isinstance(cmap, StreamObject):
                size += len(cmap.get_data())  # kept on the map: pypdf decodes it no more
        except Exception:  # noqa: BLE001 — what pypdf meets making the font, it says itself
            continue
    return size
