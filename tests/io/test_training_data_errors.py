"""Malformed training data: one UserError naming the file and where, never a parser traceback."""

import re

import pytest

from so3k_driver.errors import UserError
from so3k_driver.training.data import load_dataset

FRAME = ("3\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-1.0 pbc=\"F F F\"\n"
         "O 0 0 0 0 0 0\nH 0.96 0 0 0 0 0\nH -0.24 0.93 0 0 0 0\n")


@pytest.mark.parametrize("text, where", [
    (FRAME + FRAME.replace("3\n", "4\n", 1), "frame 2 (1-based) says 4 atoms"),
    (FRAME.replace("3\n", "2\n", 1) + FRAME, "should be the atom count of frame 2"),
    (FRAME + "three\n", "should be the atom count of frame 2"),
])
def test_a_wrong_atom_count_line_is_one_line_naming_frame_and_line(tmp_path, text, where):
    path = tmp_path / "data.extxyz"
    path.write_text(text)
    with pytest.raises(UserError, match=re.escape(where)) as caught:
        load_dataset(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_good_file_still_loads_and_a_corrupt_npz_is_a_user_error(tmp_path):
    path = tmp_path / "data.extxyz"
    path.write_text(FRAME + FRAME)
    assert len(load_dataset(path)) == 2
    broken = tmp_path / "data.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="data.npz"):
        load_dataset(broken)
