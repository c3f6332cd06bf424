"""The on-disk cache of Aff-Wild2 split indexes (:func:`fervid.data.affwild2.read_split`).

Indexing a split of the real dataset reads one directory listing per video and every annotation
file: seconds on a local disk, minutes on a network one. The table is saved once as ``.npz`` and
reused while nothing it depends on has changed: the file's name hashes the annotation files'
names, sizes and modification times, the image folders' modification times (a folder's changes
whenever a file in it is added, removed or renamed) and the rules that read them. A damaged
cache is rebuilt with a warning, never fatal; a cache that cannot be written only costs time.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from fervid.data.table import FrameTable

logger = logging.getLogger("fervid")

CACHE_VERSION = 1
"""Raised when the table's layout changes, so that older caches are not read."""


def absolute(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def cache_dir(root: str | Path) -> Path:
    """Where index caches go: ``$FERVID_CACHE_DIR`` if set, else ``ROOT/.fervid_cache`` when it
    can be written, else ``~/.cache/fervid`` (or ``$XDG_CACHE_HOME/fervid``)."""
    override = os.environ.get("FERVID_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    local = absolute(root) / ".fervid_cache"
    try:
        local.mkdir(exist_ok=True)
        if os.access(local, os.W_OK):
            return local
    except OSError:
        pass
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fervid"


def index_file(images_root: Path, split_folder: Path, split: str, depends_on: str) -> Path:
    """Cache path of the index of ``split``, whose name hashes everything the index depends on:
    the annotation files (names, sizes, mtimes), the image folders' mtimes, and ``depends_on``
    (the reader's rules, as text)."""
    place = hashlib.sha1(f"{images_root}\n{split_folder}".encode()).hexdigest()[:10]
    state = hashlib.sha1(f"{CACHE_VERSION} {depends_on}\n".encode())
    state.update(f"{os.stat(images_root).st_mtime_ns}\n".encode())
    for entry in sorted(os.scandir(split_folder), key=lambda entry: entry.name):
        if entry.name.endswith(".txt"):
            info = entry.stat()
            try:
                folder_mtime = os.stat(images_root / entry.name[:-4]).st_mtime_ns
            except OSError:
                folder_mtime = -1
            state.update(
                f"{entry.name}\t{info.st_size}\t{info.st_mtime_ns}\t{folder_mtime}\n".encode()
            )
    name = f"affwild2-{split}-{place}-{state.hexdigest()[:16]}.npz"
    return cache_dir(images_root.parent) / name


def read_index(path: Path) -> FrameTable | None:
    """The cached table, or None when there is none or it cannot be read (then rebuilt)."""
    if not path.exists():
        return None
    try:
        return FrameTable.load(path)
    except Exception as error:  # a damaged cache is rebuilt, never fatal
        logger.warning("ignoring unreadable index cache %s (%s)", path, error)
        return None


def write_index(table: FrameTable, path: Path) -> None:
    """Save ``table`` at ``path`` and remove the older caches of the same split and place."""
    try:
        table.save(path)
    except OSError as error:
        logger.warning("could not write index cache %s (%s)", path, error)
        return
    stale_prefix = path.name.rsplit("-", 1)[0] + "-"
    for old in path.parent.glob(stale_prefix + "*.npz"):
        if old != path:
            old.unlink(missing_ok=True)
