"""``pyro_bdl.cli.report``: staged report folders and tables."""

import os

from pyro_bdl.cli.report import MARKER, StagedFolder, markdown_table, text_table


def test_staged_folder_commits_atomically(tmp_path):
    staged = StagedFolder.prepare(tmp_path / "deep" / "er" / "out")
    assert staged.path.parent == tmp_path and staged.path.name.startswith(".out.partial-")
    (staged.path / "a.txt").write_text("1")
    target = staged.commit()
    assert target == tmp_path / "deep" / "er" / "out" and (target / "a.txt").read_text() == "1"
    again = StagedFolder.prepare(target)
    (again.path / "b.txt").write_text("2")
    again.commit()
    assert sorted(os.listdir(target)) == [MARKER, "b.txt"]
    discarded = StagedFolder.prepare(tmp_path / "x")
    discarded.discard()
    assert os.listdir(tmp_path) == ["deep"]


def test_tables():
    assert markdown_table(["m", "v"], [["a", 0.5], ["b", None]]).splitlines() == [
        "| m | v |",
        "|:--|--:|",
        "| a | 0.500 |",
        "| b | — |",
    ]
    assert text_table(["m", "s"], [["a", 1.25]], digits=[0, 1]).splitlines() == ["m    s", "a  1.2"]
