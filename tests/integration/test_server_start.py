"""What `covey server` tells its operator on start, and what a browser finds at `/`
(issue 14, item 5)."""

from __future__ import annotations

import httpx

from tests.integration.conftest import CoveyServer


def test_start_line_names_address_mode_database_and_console(covey_server: CoveyServer) -> None:
    log = covey_server.log()
    assert f"Covey relay on {covey_server.url}" in log
    assert "mode safeguarded" in log
    assert ("SQLite" in log) or ("PostgreSQL" in log)
    assert f"{covey_server.url}/console/" in log


def test_root_redirects_to_the_console(covey_server: CoveyServer) -> None:
    answer = httpx.get(f"{covey_server.url}/", follow_redirects=False)
    assert answer.status_code == 307
    assert answer.headers["location"] == "/console/"
    landed = httpx.get(f"{covey_server.url}/", follow_redirects=True)
    assert landed.status_code == 200
    assert "<form" in landed.text  # the console's login page
