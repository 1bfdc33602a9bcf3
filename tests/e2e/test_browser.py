"""/docs in a real browser with no network: headless Chromium (Debian's `chromium`) renders the
operations list from the service's own assets. Opt in with `pytest -m browser`; it writes the
screenshot to $LOSS_SERVICE_SCREENSHOT (default: a temporary folder) to look at."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import running

pytestmark = pytest.mark.browser


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Chromium as root, headless, with every host but 127.0.0.1 unresolvable and a proxy
    that answers nothing for anything not on loopback."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    command = [
        binary,
        *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
        *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=20000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


def test_swagger_ui_renders_every_operation_offline(tmp_path: Path) -> None:
    picture = Path(os.environ.get("LOSS_SERVICE_SCREENSHOT", tmp_path / "docs.png"))
    with running() as server:
        page = f"{server.url}/docs"
        dom = chromium(tmp_path / "a", "--dump-dom", page).stdout
        chromium(tmp_path / "b", f"--screenshot={picture}", "--window-size=1280,1800", page)
    assert 'class="swagger-ui' in dom
    for path in ("/v1/losses/cross_entropy", "/v2/models/{name}/infer", "/v1/batch", "/healthz"):
        assert f'data-path="{path}"' in dom, path
    assert picture.stat().st_size > 20_000
