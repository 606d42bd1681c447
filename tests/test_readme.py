"""The commands the README and the docs show work as shown.

Every ``./lm`` line in a shell block must be a command line ``livemotion`` accepts; every ``./lm
run`` line that needs no camera runs, on a few frames, and writes what it says.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from livemotion.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NEEDS_HARDWARE = ("webcam", "vcam")  # a camera or a virtual-camera device: neither exists on the build machines


def documented_commands(path: Path) -> list[list[str]]:
    """The ``./lm ...`` lines of ``path``'s shell blocks, as argument lists (comments and pipes cut;
    a ``$(...)`` substitution stands for the file names it makes: one, ``CLIP.mp4``)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", path.read_text(), flags=re.S):
        for line in block.splitlines():
            if line.startswith("./lm "):
                line = re.sub(r"\$\((?:[^()]|\([^()]*\))*\)", "CLIP.mp4", line)
                words = shlex.split(line.split(" | ")[0], comments=True)
                commands.append(words[1:])
    return commands


ALL = [(path.name, argv) for path in DOCUMENTS for argv in documented_commands(path)]
RUNNABLE = [argv for _, argv in ALL if argv[0] == "run"
            and not any(device in word for word in argv for device in NEEDS_HARDWARE)]


def test_the_readme_shows_commands_to_check():
    assert len(ALL) >= 30 and len(RUNNABLE) >= 12


@pytest.mark.parametrize("argv", [argv for _, argv in ALL], ids=lambda argv: " ".join(argv)[:60])
def test_every_documented_command_is_one_livemotion_accepts(argv):
    if argv[0] == "test":  # ./lm's own: the test suite
        return
    try:
        build_parser().parse_args(argv)
    except SystemExit as exit_:
        assert exit_.code == 0, f"livemotion refuses the documented command: {' '.join(argv)}"  # --help exits 0


@pytest.mark.slow
def test_the_readmes_run_lines_work_on_a_few_frames(tmp_path, monkeypatch, capsysbinary):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    for argv in RUNNABLE:  # in order: a later line may read what an earlier one wrote
        assert main([*argv, "--frames", "4", "--quiet"]) == 0, " ".join(argv)
        sink = argv[argv.index("--sink") + 1]
        if sink == "-":
            assert capsysbinary.readouterr().out.startswith(b"YUV4MPEG2")
        else:
            assert (tmp_path / sink).stat().st_size > 1000, sink
