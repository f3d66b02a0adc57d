"""`covey hash images`, `covey detect images` and `covey bank` through the real `covey`
entry point (subprocesses), on SQLite and PostgreSQL, with generated images only."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import BACKENDS
from tests.unit._pdq_images import MATCHING, jpeg, low_contrast, png, scene

COVEY = str(Path(sys.executable).parent / "covey")


def covey(*args: str, stdin: str | None = None, check: bool = True,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    result = subprocess.run([COVEY, *args], capture_output=True, text=True, input=stdin,
                            timeout=120, env=env, cwd=cwd)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def migrated(url: str) -> str:
    """The server's database, created as `covey server` would (bank commands never make
    one)."""
    from covey.server.storage import create_engine, upgrade_to_head

    async def run() -> None:
        engine = create_engine(url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    return migrated(str(request.getfixturevalue("_database_" + request.param)))


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line (after the `database: ...` line bank commands start with)."""
    lines = [line for line in result.stderr.strip().splitlines()
             if not line.startswith("database: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Originals (banked), their copies (must match), low-quality and unrelated images."""
    root = tmp_path_factory.mktemp("images")
    paths: dict[str, Path] = {}
    for seed in (1, 2):
        base = scene(seed)
        paths[f"original{seed}"] = root / f"original{seed}.png"
        paths[f"original{seed}"].write_bytes(png(base))
        for name in ("jpeg_recompressed", "mirrored", "rotated_90", "rotated_1deg",
                     "cropped_1pct", "watermarked"):
            paths[f"{name}{seed}"] = root / f"{name}{seed}.jpg"
            paths[f"{name}{seed}"].write_bytes(jpeg(MATCHING[name](base)))
        paths[f"lowq{seed}"] = root / f"lowq{seed}.png"
        paths[f"lowq{seed}"].write_bytes(png(low_contrast(base)))
    for seed in (50, 51, 52):
        paths[f"unrelated{seed}"] = root / f"unrelated{seed}.png"
        paths[f"unrelated{seed}"].write_bytes(png(scene(seed)))
    return paths


def _originals_list(images: dict[str, Path], path: Path) -> Path:
    lines = ["# known test images"]
    for seed in (1, 2):
        [row] = json_lines(covey("hash", "images", str(images[f"original{seed}"]),
                                 "--json").stdout)
        lines.append(f"{row['pdq']},scene {seed}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_hash_images_json_contract(images: dict[str, Path]) -> None:
    result = covey("hash", "images", str(images["original1"]), str(images["lowq1"]), "--json")
    rows = json_lines(result.stdout)
    assert [set(row) for row in rows] == [{"path", "pdq", "quality"}] * 2
    assert rows[0]["path"] == str(images["original1"])
    assert len(str(rows[0]["pdq"])) == 64 and int(str(rows[0]["quality"])) >= 50
    assert int(str(rows[1]["quality"])) < 50


def test_hash_images_refuses_a_non_image(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not pixels")
    result = covey("hash", "images", str(bad), "--json", check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "not an image" in result.stderr


def test_detect_images_with_a_hash_list(images: dict[str, Path], tmp_path: Path) -> None:
    hash_list = _originals_list(images, tmp_path / "known.txt")
    names = sorted(images)
    result = covey("detect", "images", "--hash-list", str(hash_list), "--json",
                   *(str(images[n]) for n in names))
    rows = dict(zip(names, json_lines(result.stdout), strict=True))
    for name, row in rows.items():
        assert set(row) == {"path", "pdq", "quality", "match"}
        match = row["match"]
        if name.startswith(("lowq", "unrelated")):
            assert match is None, name
            continue
        assert isinstance(match, dict), name
        assert set(match) == {"distance", "hash", "meta"}
        assert int(match["distance"]) <= 31
        assert match["meta"] == {"text": f"scene {name[-1]}"}, name


def test_detect_needs_one_list(images: dict[str, Path]) -> None:
    result = covey("detect", "images", str(images["original1"]), check=False)
    assert result.returncode == 2
    assert "exactly one of --hash-list FILE or --bank NAME" in result.stderr


@pytest.mark.timeout(900)
def test_bank_lifecycle_and_detect(database_url: str, images: dict[str, Path],
                                   tmp_path: Path) -> None:
    db = ("--database-url", database_url)
    covey("bank", "create", "known", *db)
    duplicate = covey("bank", "create", "known", *db, check=False)
    assert duplicate.returncode == 2 and "exists" in duplicate.stderr
    added = covey("bank", "add-image", "known", str(images["original1"]), *db)
    assert "added 1 image hashes" in added.stdout
    refused = covey("bank", "add-image", "known", str(images["lowq1"]), *db, check=False)
    assert refused.returncode == 2 and "quality" in refused.stderr
    hash_list = _originals_list(images, tmp_path / "known.txt")
    imported = covey("bank", "import", "known", str(hash_list), *db)
    assert "imported 1 new hashes into known (1 already there)" in imported.stdout
    [listed] = json_lines(covey("bank", "list", "--json", *db).stdout)
    assert (listed["name"], listed["entries"]) == ("known", 2)

    queries = ["mirrored1", "rotated_902", "unrelated50", "lowq2"]
    rows = json_lines(covey("detect", "images", "--bank", "known", "--json", *db,
                            *(str(images[q]) for q in queries)).stdout)
    assert [row["match"] is not None for row in rows] == [True, True, False, False]

    covey("bank", "remove", "known", *db)
    assert json_lines(covey("bank", "list", "--json", *db).stdout) == []
    absent = covey("bank", "list", "--database-url",
                   f"sqlite+aiosqlite:///{tmp_path / 'absent.db'}", check=False)
    assert absent.returncode == 2 and "no server database" in absent.stderr
    assert not (tmp_path / "absent.db").exists()
    missing = covey("detect", "images", "--bank", "known", str(images["mirrored1"]), *db,
                    check=False)
    assert missing.returncode == 2 and "no bank named 'known'" in missing.stderr


def _te_rows(text: str) -> list[tuple[str, ...]]:
    """CSV rows with the space-separated label set (written from a set) sorted."""
    rows = []
    for line in sorted(text.splitlines()):
        *fields, labels = line.split(",")
        rows.append((*fields, " ".join(sorted(labels.split()))))
    return sorted(rows)


@pytest.mark.slow
@pytest.mark.timeout(900)  # 14 `covey` processes
def test_bank_import_export_round_trip(database_url: str, tmp_path: Path) -> None:
    db = ("--database-url", database_url)
    source = tmp_path / "source.txt"
    hashes = [f"{i:064x}" for i in (1, 2**200 + 5, 2**255 + 77)]
    source.write_text(f"{hashes[0]},alpha\n{hashes[1]} beta gamma\n{hashes[2]}\n")
    covey("bank", "create", "a", *db)
    covey("bank", "import", "a", str(source), *db)
    for fmt in ("text", "te", "hma"):
        exported = tmp_path / f"a.{fmt}"
        covey("bank", "export", "a", "--format", fmt, "--out", str(exported), *db)
        covey("bank", "create", f"b-{fmt}", *db)
        covey("bank", "import", f"b-{fmt}", str(exported), "--format", fmt, *db)
        again = covey("bank", "export", f"b-{fmt}", "--format", fmt, *db).stdout
        if fmt == "text":
            assert again == source.read_text().replace(" beta", ",beta")
        else:
            assert _te_rows(again) == _te_rows(exported.read_text())
            assert {row[0] for row in _te_rows(again)} == set(hashes)
            assert "beta gamma" in {row[-1] for row in _te_rows(again)}


@pytest.mark.timeout(900)
def test_bank_errors_are_one_line_exit_2(database_url: str, tmp_path: Path) -> None:
    db = ("--database-url", database_url)
    bad = tmp_path / "bad.txt"
    bad.write_text("0" * 64 + "\nnot a hash\n")
    covey("bank", "create", "x", *db)
    cases = [
        ("bank", "import", "x", str(bad), *db),
        ("bank", "import", "x", str(tmp_path / "absent.txt"), *db),
        ("bank", "import", "nope", str(bad).replace("bad", "bad"), *db),
        ("bank", "create", "bad name!", *db),
        ("bank", "remove", "nope", *db),
        ("bank", "export", "nope", *db),
    ]
    for args in cases:
        result = covey(*args, check=False)
        assert result.returncode == 2, args
        error_line(result)
    assert "line 2: not a 64-hex PDQ hash" in error_line(covey(*cases[0], check=False))
    # Nothing from the rejected list was stored.
    [listed] = json_lines(covey("bank", "list", "--json", *db).stdout)
    assert listed["entries"] == 0


def test_every_command_has_help_with_an_example() -> None:
    for args in (("bank", "create"), ("bank", "import"), ("bank", "export"), ("bank", "list"),
                 ("bank", "remove"), ("bank", "add-image"), ("hash", "images"),
                 ("detect", "images")):
        result = covey(*args, "--help")
        assert "Example: covey " in result.stdout, args
