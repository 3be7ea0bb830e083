"""Atomic file writes: a unique temporary file next to the target, then ``os.replace``.

Every file spherenet writes (CSV tables, run files, figures, saved models) goes through
:func:`atomic_write` or :func:`atomic_open`. A reader, a resumed grid or a
second process writing the same folder sees the old file or the whole new
one under the final name, never a partial one, and two writers never share a
temporary file: each gets its own from :func:`tempfile.mkstemp`, named
``.<name>.tmp-<random>`` in the target's folder (the same file system, so
``os.replace`` is a rename). On any error, ``KeyboardInterrupt`` included, the
temporary file is removed and the target is left as it was.
"""

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_open", "atomic_write", "temporary_prefix", "probe_writable"]


def _umask_by_setting_it():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_IMPORT_UMASK = _umask_by_setting_it()


def _file_mode():
    """The mode a plain ``open(path, "w")`` gives a new file: 0o666 less the umask.

    mkstemp creates its file with mode 0o600; a finished file gets this mode
    instead. The umask is read from /proc where there is one (reading it
    with os.umask means setting it, which races with other threads); else
    the one at import is used.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o666 & ~_IMPORT_UMASK


def temporary_prefix(path):
    """The prefix of the temporary files that stand for ``path`` while it is written."""
    return f".{Path(path).name}.tmp-"


@contextlib.contextmanager
def atomic_open(path, mode="w", *, newline=None, tag="", suffix="", make_parents=True):
    """Open a unique temporary file next to ``path``; on success move it to ``path``.

    Parameters
    ----------
    path : path-like
        The target. Its folder is created if needed (unless ``make_parents``
        is False: then a missing folder is an error).
    mode : {"w", "wb"}
        Text or binary.
    newline : str, optional
        As for :func:`open` (text mode only).
    tag, suffix : str, optional
        Put in the temporary file's name, ``.<name>.tmp-<tag><random><suffix>``
        (e.g. the writer's process id, so that its leftovers can be told
        from a live writer's).

    Yields
    ------
    file object
        Flushed, synced to disk and renamed to ``path`` when the block ends
        without an exception; removed if it raises.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_open(folder / "run.json") as handle:
    ...     json.dump({"seed": 0}, handle)
    >>> json.loads((folder / "run.json").read_text())
    {'seed': 0}
    >>> sorted(p.name for p in folder.iterdir())  # no temporary file is left
    ['run.json']
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path) + tag, suffix=suffix)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": newline})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path, content):
    """Write ``content`` to ``path`` atomically; returns ``path`` as a :class:`~pathlib.Path`.

    Parameters
    ----------
    path : path-like
    content : str, bytes or callable
        Text, bytes, or a function ``write(handle)`` given a binary file
        object to write into, e.g. ``lambda f: figure.savefig(f, format="svg")``
        or ``lambda f: numpy.savez(f, **arrays)``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "table.csv"
    >>> atomic_write(path, "a,b\\n1,2\\n").read_text()
    'a,b\\n1,2\\n'
    """
    if callable(content):
        with atomic_open(path, "wb") as handle:
            content(handle)
    elif isinstance(content, bytes):
        with atomic_open(path, "wb") as handle:
            handle.write(content)
    elif isinstance(content, str):
        with atomic_open(path, "w", newline="") as handle:
            handle.write(content)
    else:
        raise TypeError(f"content must be str, bytes or a function of a file, "
                        f"got {type(content).__name__}")
    return Path(path)


def probe_writable(directory):
    """Check that files can be created in ``directory``, or in the nearest existing
    folder above it if it does not exist yet; creates nothing that stays.

    Raises
    ------
    OSError
        With the reason (``PermissionError``, ``NotADirectoryError``, a
        read-only file system, ...) and the folder that refused.
    """
    directory = Path(directory).absolute()
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(20, "not a folder", str(existing))
    try:
        fd, tmp = tempfile.mkstemp(dir=existing, prefix=".spherenet-write-test-")
    except OSError as err:
        raise type(err)(err.errno, err.strerror, str(existing)) from None
    os.close(fd)
    os.unlink(tmp)
