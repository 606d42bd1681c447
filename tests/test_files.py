"""Small files: the folder index reads each file once, and again only when it changes."""

import os

from livemotion.io.files import FolderIndex


def test_folder_index_reads_each_file_once_and_follows_changes(tmp_path):
    reads = []

    def read(path):
        reads.append(path.name)
        text = path.read_text()
        return None if text == "junk" else (path.stem, text)

    index = FolderIndex(read)
    (tmp_path / "a.npz").write_text("one")
    (tmp_path / "b.npz").write_text("junk")
    (tmp_path / "notes.txt").write_text("not matched")
    assert index(tmp_path) == [("a", "one")]
    assert index(tmp_path) == [("a", "one")]
    assert sorted(reads) == ["a.npz", "b.npz"]  # the second listing read nothing

    (tmp_path / "c.npz").write_text("three")
    assert index(tmp_path) == [("a", "one"), ("c", "three")]
    assert reads[-1] == "c.npz" and len(reads) == 3

    (tmp_path / "a.npz").write_text("changed")
    os.utime(tmp_path / "a.npz", ns=(1, 1))  # a different mtime even on a coarse clock
    assert index(tmp_path) == [("a", "changed"), ("c", "three")]

    (tmp_path / "c.npz").unlink()
    assert index(tmp_path) == [("a", "changed")]
