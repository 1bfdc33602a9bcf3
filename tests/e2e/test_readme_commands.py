"""The README's commands, run as written against a real server: every curl example answers what
its comment says, and the client's quick start runs, in this venv and in a fresh one holding
the client alone (`pip install ./client`)."""

import json
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", README, re.S)
CURLS = [block for lang, block in BLOCKS if lang == "bash" and block.startswith("curl ")]
(QUICK_START,) = [block for lang, block in BLOCKS if "from loss_service_client" in block]


def as_written(block: str, url: str) -> str:
    """The block with the server's address for the README's."""
    host = url.removeprefix("http://")
    return block.replace("http://127.0.0.1:8000", url).replace("localhost:8000", host)


@pytest.mark.parametrize("block", CURLS, ids=[b.split()[2].split("8000")[1] for b in CURLS])
def test_every_curl_example_answers_what_it_says(server: str, block: str) -> None:
    command = "\n".join(line for line in block.splitlines() if not line.startswith("#"))
    expected = "".join(line[2:] for line in block.splitlines() if line.startswith("# "))
    done = subprocess.run(
        ["bash", "-c", as_written(command, server)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(expected)


def check_quick_start(python: Path | str, url: str) -> None:
    done = subprocess.run(
        [str(python), "-c", as_written(QUICK_START, url)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"mean cross entropy \d\.\d{4} over 10000 samples", lines[0])
    assert lines[1] == "per sample (10000,) gradient (10000, 5)"
    assert lines[2].startswith("suspect samples [") and lines[3].startswith("the model predicts")


def test_the_quick_start_runs_as_written(server: str) -> None:
    check_quick_start(sys.executable, server)


def test_the_quick_start_runs_in_a_venv_with_the_client_alone(server: str, tmp_path: Path) -> None:
    """No torch, no server: what `pip install ./client` brings, at the pinned versions."""
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    install += ["-c", str(ROOT / "constraints.txt"), str(ROOT / "client")]
    done = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    modules = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
        capture_output=True,
        text=True,
    )
    assert modules.stdout.strip() == "None"
    check_quick_start(python, server)
