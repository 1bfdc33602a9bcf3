"""The README lists every loss and every setting."""

from pathlib import Path

from service.config import Settings
from service.losses import REGISTRY

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_loss_is_in_the_catalogue_table() -> None:
    for name in REGISTRY:
        assert f"| `{name}` |" in README


def test_every_setting_is_documented_with_its_variable() -> None:
    for name in Settings.model_fields:
        assert f"| `LOSS_SERVICE_{name.upper()}` |" in README


def test_every_activation_is_in_its_table() -> None:
    from service.activations import ACTIVATIONS

    for name in ACTIVATIONS:
        assert f"| `{name}` |" in README
