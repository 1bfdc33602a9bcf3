"""/docs and /redoc work without a network: every script, stylesheet and icon they name is
served by the service itself, and they name no other host."""

import re

import pytest
from fastapi.testclient import TestClient

REFERENCE = re.compile(rb"""(?:src|href|spec-url)="([^"]*)"|url: '([^']*)'""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_names_no_other_host_and_serves_what_it_names(
    client: TestClient, page: str
) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.content
    assert b"http://" not in html and b"https://" not in html and b"//" not in html
    named = {a or b for a, b in REFERENCE.findall(html)}
    assert b"/openapi.json" in named
    assert len(named) >= 3  # the document, a script and the icon (and Swagger UI's styles)
    for path in named:
        assert client.get(path.decode()).status_code == 200, path


def test_swagger_ui_asks_no_online_validator(client: TestClient) -> None:
    assert b'"validatorUrl": null' in client.get("/docs").content
