"""The names that are never a clerk's data: what a copy or an editor keeps while at
work (in-progress), and what computers leave beside the clerks' files (litter)
(docs/folder-convention.md, section 1). Tables only: names.classify says which a
name is.
"""

from __future__ import annotations

# An office program's lock beside a document open in it (Word's, LibreOffice's).
LOCKS = ("~$*", ".~lock.*#")
# A copy or an editor is still at work on these (Emacs keeps "#NAME#" while a change to
# NAME is unsaved, as LibreOffice keeps its lock).
IN_PROGRESS = ("*.tmp", "*.temp", "*.part", "*.partial", "*.crdownload", "*.swp",
               *LOCKS, ".syncthing.*.tmp", "#*#")
# Alternate data streams a Windows or Mac client attaches to a file (Windows' download
# mark and SmartScreen verdict, Explorer's mark on Thumbs.db, a Mac's Finder info and
# resource fork). A share without stream support shows each as a file beside it,
# "NAME:STREAM", or with each ':' mapped to U+F03A (SFU: cifs `mapchars`, catia) or
# U+F022 (SFM: Mac clients, Samba's fruit, cifs `mapposix`).
_STREAMS = ("Zone.Identifier", "SmartScreen", "encryptable", "AFP_AfpInfo", "AFP_Resource",
            "com.apple.*", "com.dropbox.*")
_COLONS = (":", "\uf03a", "\uf022")
# A Mac's AppleDouble file "._NAME": NAME's Finder info and resource fork, where the
# share keeps no streams.
APPLEDOUBLE = "._"
# What holds another file's metadata, never data of its own: litter whatever its name
# ends in ("._INV-1.pdf.part" is no copy under way), so it never holds a bundle.
METADATA = (f"{APPLEDOUBLE}*", *(f"*{colon}{stream}{data}" for stream in _STREAMS
                                 for colon in _COLONS for data in ("", f"{colon}$DATA")))
# Windows' own: Explorer's thumbnail caches, a drive's recycle bin (RECYCLER before
# Vista) and its restore points, which Windows makes at the top of a share mapped as
# a drive.
_WINDOWS = ("Thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini", "$RECYCLE.BIN",
            "RECYCLER", "System Volume Information")
# A NAS's own: a Synology's indexing service makes "@eaDir" (thumbnails, metadata) in
# every folder it indexes, sidecars too, and the clerks can neither mend nor remove it.
_NAS = ("@eaDir",)
# Desktop litter: never an invoice or attachment, never an error. "Icon\r" holds a Mac
# folder's custom icon (the CR is U+F00D under SFM); "NAME~" is the copy an editor
# keeps of what NAME was before it was saved.
DESKTOP = (*_WINDOWS, *_NAS, ".DS_Store", "Icon\r", "Icon\uf00d", "*~", *METADATA)
LITTER = (*DESKTOP, ".*")  # and any other dot-file: hidden
