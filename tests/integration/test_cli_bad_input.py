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

# (arguments, extra environment, a phrase the one line must contain). "{given}" is a folder
# of prepared files outside the working directory: junk.db (not a store), pixels.txt.
NO_SERVER = "http://127.0.0.1:9"
CASES = [
    (["server", "--database-url", "mysql://localhost/x"], {}, "unsupported database backend"),
    (["server", "--database-url", "not a url"], {}, "not a database URL"),
    (["server", "--database-url", MISSING_PG], {}, "does not exist"),
    (["server"], {"COVEY_SAFETY_MODE": "bogus"}, "COVEY_SAFETY_MODE"),
    (["server"], {"COVEY_PORT": "eighty"}, "COVEY_PORT"),
    (["server", "--port", "99999"], {}, "out of range"),
    (["server", "--log-level", "loud"], {}, "--log-level"),
    (["server", "--host", "999.1.1.1"], {}, "cannot listen on"),
    (["server", "--data-dir", "/proc/no/such/dir"], {}, "cannot use the data directory"),
    # Admin commands in a directory without the server's database never create one.
    (["admin", "create-user", "mod"], {"COVEY_ADMIN_PASSWORD": "pw"}, "no server database"),
    (["admin", "export-key", "--out", "key.pem"], {}, "no attestation key"),
    (["transparency", "--json"], {}, "no server database"),
    (["admin", "create-user", "mod", "--database-url", MISSING_PG],
     {"COVEY_ADMIN_PASSWORD": "pw"}, "does not exist"),
    (["bank", "list"], {}, "no server database"),
    # Device commands: a file that is not a store, a store that is not there.
    (["whoami", "--store", "{given}/junk.db"], {}, "is not a Covey store"),
    (["whoami", "--store", "{given}/junk.db", "--prove"], {}, "is not a Covey store"),
    (["whoami", "--store", "missing.db"], {}, "no store there"),
    (["whoami", "--store", "{given}"], {}, "a folder, not a store file"),
    (["history", "--store", "{given}/junk.db", "--with", "bob"], {}, "is not a Covey store"),
    (["contacts", "list", "--store", "{given}/junk.db"], {}, "is not a Covey store"),
    (["contacts", "block", "bob", "--store", "{given}/junk.db"], {}, "is not a Covey store"),
    (["guardian", "list", "--store", "{given}/junk.db"], {}, "is not a Covey store"),
    (["report", "m1", "--category", "harassment", "--store", "{given}/junk.db"], {},
     "is not a Covey store"),
    (["chat", "--store", "{given}/junk.db", "--to", "bob"], {}, "is not a Covey store"),
    (["chat", "--store", "missing.db", "--to", "bob"], {}, "no store there"),
    (["register", "--server", NO_SERVER, "--store", "new.db", "Bad Handle!"], {},
     "invalid handle"),
    (["chat", "--server", NO_SERVER, "--store", "new.db", "--register", "BAD!!", "--to",
      "bob"], {}, "invalid handle"),
    (["register", "--server", "not-a-url", "--store", "new.db", "alice"], {},
     "must start with http"),
    # Usage errors: one line naming the problem and the --help to read.
    (["no-such-command"], {}, "No such command"),
    (["hash", "{given}/pixels.txt"], {}, "No such command"),
    (["report", "--store", "x.db"], {}, "Missing argument"),
    (["report", "m1", "--category", "bogus", "--store", "x.db"], {}, "Invalid value"),
    (["demo", "--bogus"], {}, "No such option"),
    (["guardian", "link", "bob", "--store", "x.db", "--role", "boss"], {}, "Invalid value"),
    (["issuer", "approve", "t1"], {}, "Missing option '--birth-date'"),
    (["issuer", "pending", "--dir", "nowhere"], {}, "no issuer in nowhere"),
    (["issuer", "approve", "t1", "--birth-date", "2000-13-01", "--dir", "nowhere"], {},
     "not a date"),
    (["detect", "images", "{given}/pixels.txt"], {}, "give exactly one of"),
    (["evidence", "verify", "{given}/junk.db", "--public-key", "{given}/junk.db"], {},
     "the public key must be PEM"),
]


@pytest.mark.parametrize(("args", "env", "phrase"), CASES,
                         ids=[" ".join(c[0]) + " " + " ".join(c[1]) for c in CASES])
def test_bad_input_gets_one_clear_line(args: list[str], env: dict[str, str], phrase: str,
                                       tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.mkdir()
    (given / "junk.db").write_text("these are notes, not a store\n")
    (given / "pixels.txt").write_text("not an image\n")
    before = sorted(p.name for p in given.iterdir())
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run([sys.executable, "-m", "covey",
                           *[a.replace("{given}", str(given)) for a in args]], cwd=work,
                          env={**os.environ, "COVEY_PASSPHRASE": "a passphrase", **env,
                               "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output and "unexpected" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert phrase in lines[0]
    # Nothing was created in the working directory, or beside the given files.
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in given.iterdir()) == before
