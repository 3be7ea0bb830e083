"""Atomic writes: a unique temporary file next to the target, then ``os.replace``."""

import os
import threading

import numpy as np
import pytest

from spherenet._atomic import atomic_open, atomic_write, probe_writable, temporary_prefix


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def test_text_bytes_and_a_writer_function(tmp_path):
    assert atomic_write(tmp_path / "a.csv", "x,y\r\n1,2\n").read_bytes() == b"x,y\r\n1,2\n"
    assert atomic_write(tmp_path / "b.bin", b"\x00\xff").read_bytes() == b"\x00\xff"
    arrays = {"w": np.arange(6.0).reshape(2, 3)}
    atomic_write(tmp_path / "c.npz", lambda handle: np.savez(handle, **arrays))
    with np.load(tmp_path / "c.npz") as loaded:
        np.testing.assert_array_equal(loaded["w"], arrays["w"])
    atomic_write(tmp_path / "sub" / "d.txt", "made")  # the folder is created
    assert (tmp_path / "sub" / "d.txt").read_text() == "made"
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_the_file_gets_the_mode_open_would_give(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "atomic.txt", "x")
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x")
    finally:
        os.umask(previous)
    mode = (tmp_path / "atomic.txt").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert mode != 0o600  # not mkstemp's


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = atomic_write(tmp_path / "plot.svg", "<svg/>")

    def half_then_fail(handle):
        handle.write(b"<svg><g>")
        raise error("disk full")

    with pytest.raises(error):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "<svg/>"
    assert not _leftovers(tmp_path)


def test_each_writer_has_its_own_temporary_file(tmp_path):
    """Writers of one path never share a temporary file: while two are open
    at once, each sees its own, and the last to finish wins whole."""
    path = tmp_path / "results.csv"
    with atomic_open(path) as first, atomic_open(path) as second:
        names = _leftovers(tmp_path)
        assert len(names) == 2 and all(n.startswith(temporary_prefix(path)) for n in names)
        first.write("first\n" * 1000)
        second.write("second\n")
    assert path.read_text() == "first\n" * 1000  # the outer block ends last
    assert not _leftovers(tmp_path)


def test_threads_writing_one_path_leave_one_whole_file(tmp_path):
    path = tmp_path / "run.json"
    texts = [str(i) * (1000 + i) for i in range(8)]
    errors = []

    def write(text):
        try:
            for _ in range(20):
                atomic_write(path, text)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert path.read_text() in texts
    assert not _leftovers(tmp_path)


def test_bad_mode_and_content_are_refused(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        with atomic_open(tmp_path / "x", "a"):
            pass
    with pytest.raises(TypeError, match="content must be str, bytes or a function of a file, "
                                        "got int"):
        atomic_write(tmp_path / "x", 3)
    assert not list(tmp_path.iterdir())


def test_probe_writable(tmp_path):
    probe_writable(tmp_path)
    probe_writable(tmp_path / "not" / "yet")  # checked where it would be created
    assert not list(tmp_path.iterdir())  # creates nothing
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError) as info:
        probe_writable(tmp_path / "file" / "sub")
    assert info.value.filename == str(tmp_path / "file")
    if os.geteuid() != 0:  # root writes in read-only folders
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        with pytest.raises(PermissionError) as info:
            probe_writable(locked / "out")
        assert info.value.filename == str(locked)
