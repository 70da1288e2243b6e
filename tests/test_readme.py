"""The README's quickstart runs as written, and its two commands exist in the Makefile."""

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_snippet_runs_as_written(capsys):
    torch.set_default_dtype(torch.float32)  # as a new user's session has it (conftest restores)
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python block"
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert re.search(r"ELBO/N -?\d+\.\d+; mean epistemic variance \d+\.\d+", out)


def test_readme_commands_are_make_targets():
    text = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in text
        assert re.search(rf"^{target}:", makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
