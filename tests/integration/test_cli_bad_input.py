"""Every command answers bad input with one clear line and exit code 2, never a traceback
(issue 14, item 4). Each case runs the real `covey` entry point in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import POSTGRES_URL

MISSING_PG = POSTGRES_URL.rsplit("/", 1)[0] + "/covey_no_such_database"

# (arguments, extra environment, a phrase the one line must contain)
CASES = [
    (["server", "--database-url", "mysql://localhost/x"], {}, "unsupported database backend"),
    (["server", "--database-url", "not a url"], {}, "not a database URL"),
    (["server", "--database-url", MISSING_PG], {}, "does not exist"),
    (["server"], {"COVEY_SAFETY_MODE": "bogus"}, "COVEY_SAFETY_MODE"),
    (["server"], {"COVEY_PORT": "eighty"}, "COVEY_PORT"),
    # Admin commands in a directory without the server's database never create one.
    (["admin", "create-user", "mod"], {"COVEY_ADMIN_PASSWORD": "pw"}, "no server database"),
    (["admin", "export-key", "--out", "key.pem"], {}, "no attestation key"),
    (["transparency", "--json"], {}, "no server database"),
    (["admin", "create-user", "mod", "--database-url", MISSING_PG],
     {"COVEY_ADMIN_PASSWORD": "pw"}, "does not exist"),
]


@pytest.mark.parametrize(("args", "env", "phrase"), CASES,
                         ids=[" ".join(c[0]) + " " + " ".join(c[1]) for c in CASES])
def test_bad_input_gets_one_clear_line(args: list[str], env: dict[str, str], phrase: str,
                                       tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "covey", *args], cwd=tmp_path,
                          env={**os.environ, **env, "COLUMNS": "200"}, capture_output=True,
                          text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert phrase in lines[0]
    # Nothing was created in the working directory by a refused command.
    assert list(tmp_path.iterdir()) == []
