"""The project installs as a package: `pip install -e .` (and a Space) gets the `emorank` console command."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_has_the_library_and_the_console_command(tmp_path):
    """Built from a copy of the sources (a checkout's own build/ folder may hold modules that no longer exist), the
    wheel holds every module of every subpackage, and nothing else of the repository."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(ROOT / "emorank", src / "emorank", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("emorank-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        meta = z.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "emorank = emorank.cli:main" in entry
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "emorank").rglob("*.py") if "__pycache__" not in p.parts}
    assert {"emorank/__init__.py", "emorank/cli/__init__.py", "emorank/app/tabs/explore.py"} <= modules
    assert modules == {n for n in names if n.endswith(".py")}  # every subpackage, no stale module
    assert not any(n.startswith(("tests/", "checkpoints/", "data/")) for n in names)
    from packaging.requirements import Requirement

    def spec(text):
        r = Requirement(text)
        return r.name.lower(), r.specifier

    declared = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    shipped = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert sorted(map(spec, shipped), key=str) == sorted((spec(r) for r in declared if r), key=str)


def test_the_command_runs_outside_the_repository(tmp_path):
    """`python -m emorank` from any folder (the package must be importable, not just the repo root)."""
    out = subprocess.run([sys.executable, "-m", "emorank", "caption", "--valence", "6", "--arousal", "2", "--n", "1"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout.startswith("The person is speaking")
