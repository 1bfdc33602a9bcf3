"""The README is a short user's guide, and docs/ holds the rest: every loss, activation and
setting is in its table there, and every link points at a file of the repository."""

import re
from pathlib import Path

import pytest

from service.activations import ACTIVATIONS
from service.config import Settings
from service.losses import REGISTRY

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in (ROOT / "docs").glob("*.md")}


def test_the_readme_is_a_guide_of_at_most_300_lines() -> None:
    assert len(README.splitlines()) <= 300


def test_every_loss_is_in_the_catalogue_table() -> None:
    for name in REGISTRY:
        assert f"| `{name}` |" in DOCS["api.md"]


def test_every_activation_is_in_its_table() -> None:
    for name in ACTIVATIONS:
        assert f"| `{name}` |" in DOCS["api.md"]


def test_every_setting_is_documented_with_its_variable() -> None:
    for name in Settings.model_fields:
        assert f"| `LOSS_SERVICE_{name.upper()}` |" in DOCS["operations.md"]


@pytest.mark.parametrize("name", ["README.md", *(f"docs/{n}" for n in DOCS)])
def test_every_link_points_into_the_repository(name: str) -> None:
    path = ROOT / name
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        assert not target.startswith("../"), f"{name} links outside the repository: {target}"
        assert (path.parent / target).exists(), f"{name} links to a missing {target}"


def test_every_metric_is_in_the_grades_table() -> None:
    from service.grades.metrics import METRICS

    for name in METRICS:
        assert f"| `{name}` |" in DOCS["grades.md"]
