"""Writes that survive a crash, and the temporaries they leave when they do not.

Every write that matters (a face crop, a person's card, a model and its card, the
embedding cache, a pointer) goes through here: the data goes to a *hidden
temporary* beside its target (same folder, so the final ``rename`` is atomic), is
flushed to disk, then renamed over the target. Readers see the old file or the new
one, never a mix.

Temporaries are named ``.tmp-<pid>-<random><suffix>``: the leading dot hides them
from every listing (the gallery skips dot-names), and the process id tells
``sweep_temporaries`` whether the writer is still alive. A process killed mid-write
(``kill -9``, a power cut) leaves its temporary behind; the next start-up sweeps it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: Prefix of every temporary file or folder this module makes.
TEMP_PREFIX = ".tmp-"
#: Prefixes of other hidden work-in-progress entries (a person's folder being made or
#: deleted, older temporaries without a pid); swept the same way.
WORK_PREFIXES = (TEMP_PREFIX, ".new-", ".deleting-")
#: A temporary with no live writer is removed at once; one whose writer cannot be told
#: (an older name without a pid, or a pid that may have been reused after a reboot) only
#: once it is older than this (seconds). Lowering it risks deleting a slow writer's file.
ORPHAN_AGE_S = 6 * 3600


def temporary_path(target: Path, suffix: str = "") -> Path:
    """A fresh hidden name beside ``target`` for this process (nothing is created)."""
    return target.parent / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}{suffix}"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with tmp.open("xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """``atomic_write_bytes`` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: str | Path, save: Callable[[Path], object], suffix: str = "") -> None:
    """Let ``save`` write a hidden temporary (named with ``suffix``, e.g. ``.keras``, which
    Keras insists on), then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path, suffix)
    try:
        save(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def staging_folder(parent: Path) -> Iterator[Path]:
    """A hidden folder inside ``parent`` to build something whole before one ``rename``
    publishes it; removed on the way out if it was not renamed away."""
    parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_path(parent / "x")
    staging.mkdir()
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def publish_folder(staging: Path, target: Path) -> None:
    """Rename a finished staging folder to ``target`` (which must not exist), after
    flushing its files, so ``target`` appears whole or not at all."""
    for child in staging.iterdir():
        if child.is_file():
            _fsync_file(child)
    os.rename(staging, target)
    _fsync_dir(target.parent)


def remove_tree(folder: Path) -> None:
    """Delete ``folder`` so that no reader ever sees it half-deleted: rename it to a hidden
    name first (atomic), then delete that. A crash in between leaves only a hidden
    ``.deleting-`` folder, which the next ``sweep_temporaries`` finishes off."""
    trash = folder.parent / f".deleting-{os.getpid()}-{secrets.token_hex(6)}"
    os.rename(folder, trash)
    _fsync_dir(folder.parent)
    shutil.rmtree(trash, ignore_errors=True)


def is_hidden(path: Path) -> bool:
    """Whether a listing should skip ``path`` (our temporaries and locks start with a dot)."""
    return path.name.startswith(".")


def sweep_temporaries(folder: str | Path, *, depth: int = 2, now: float | None = None) -> list[Path]:
    """Delete temporaries left in ``folder`` (and ``depth`` levels below) by writers that
    died. Returns what was removed. Safe while other processes write: a live writer's
    temporary is never touched."""
    root = Path(folder)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    moment = time.time() if now is None else now
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(WORK_PREFIXES):
            if _abandoned(entry, moment):
                with contextlib.suppress(OSError):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                    removed.append(entry)
        elif depth > 0 and entry.is_dir() and not entry.is_symlink():
            removed += sweep_temporaries(entry, depth=depth - 1, now=moment)
    return removed


def writer_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (it may be another program that
    reused the number: callers also look at the age)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _abandoned(entry: Path, now: float) -> bool:
    pid = _writer_pid(entry.name)
    try:
        age = now - entry.lstat().st_mtime
    except OSError:
        return False
    if pid is not None and not writer_alive(pid):
        return True
    return age > ORPHAN_AGE_S


def _writer_pid(name: str) -> int | None:
    for prefix in WORK_PREFIXES:
        if name.startswith(prefix):
            head = name[len(prefix):].split("-", 1)[0]
            return int(head) if head.isdigit() else None
    return None


def _fsync_file(path: Path) -> None:
    with contextlib.suppress(OSError), path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        handle = os.open(path, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
