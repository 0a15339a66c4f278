"""The Space builds: README front matter, requirements, constraints and the code agree with each other.

A ZeroGPU Space installs its own torch (one of the Hub's supported versions, on Python 3.10) and refuses a pin it does
not support; our machines need torch 2.13.0 (a local CPU wheel). requirements.txt keeps a range both satisfy and
constraints.txt holds the local pin.
"""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
from pathlib import Path

import pytest
from huggingface_hub.repocard import metadata_load
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
# The Hub's ZeroGPU documentation (docs/hub/spaces-zerogpu.md): the torch versions a ZeroGPU Space can install.
ZEROGPU_TORCH = ("2.1.0", "2.1.1", "2.1.2", "2.2.0", "2.2.2", "2.4.0", "2.5.1", "2.6.0", "2.7.1", "2.8.0")
ZEROGPU_PYTHON = "3.10"
# Where the release installed here needs Python >= 3.11: the release pip picks for Python 3.10 (measured with
# `pip install --dry-run --no-deps --target T --python-version 3.10 --only-binary=:all: -r requirements.txt`).
PY310_RELEASES = {"numpy": "2.2.6", "scipy": "1.15.3", "matplotlib": "3.10.9", "transformers": "5.20.2"}


def _requirements(path: Path) -> dict[str, Requirement]:
    """name -> Requirement of a requirements file, following ``-r`` includes."""
    out: dict[str, Requirement] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            out.update(_requirements(path.parent / line[3:].strip()))
        elif line.startswith("-"):
            raise AssertionError(f"{path.name}: unexpected pip option {line!r}")
        else:
            req = Requirement(line)
            out[_canonical(req.name)] = req
    return out


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def front_matter() -> dict:
    meta = metadata_load(ROOT / "README.md")
    assert meta, "README.md has no YAML front matter"
    return meta


@pytest.fixture(scope="module")
def requirements() -> dict[str, Requirement]:
    return _requirements(ROOT / "requirements.txt")


def test_front_matter_declares_a_gradio_space(front_matter):
    assert front_matter["sdk"] == "gradio"
    assert (ROOT / front_matter["app_file"]).is_file()


def test_sdk_version_is_the_installed_gradio_and_satisfies_the_requirements(front_matter, requirements):
    sdk = str(front_matter["sdk_version"])
    assert sdk == importlib.metadata.version("gradio"), "README sdk_version must be the gradio the tests run on"
    assert requirements["gradio"].specifier.contains(sdk), (sdk, str(requirements["gradio"]))


def test_python_version_is_zerogpu_and_admitted(front_matter, requirements):
    python = str(front_matter["python_version"])
    assert python == ZEROGPU_PYTHON  # a quoted string in the YAML: an unquoted 3.10 parses as the float 3.1
    for name, req in requirements.items():
        assert req.marker is None or req.marker.evaluate({"python_version": python}), name
    # Distributions whose installed release needs a newer Python must still admit a release that supports 3.10.
    for name, release in PY310_RELEASES.items():
        assert requirements[name].specifier.contains(release), (name, release, str(requirements[name]))
    for name in requirements:
        try:
            needs = importlib.metadata.metadata(name)["Requires-Python"]
        except importlib.metadata.PackageNotFoundError:
            continue
        if needs and not SpecifierSet(needs).contains(f"{python}.13"):
            assert name in PY310_RELEASES, f"{name} (installed) needs Python {needs}: record its 3.10 release"


def test_torch_range_admits_zerogpu_and_the_local_pin(requirements):
    torch = requirements["torch"].specifier
    assert not any(s.operator == "==" for s in torch), "a pinned torch makes a ZeroGPU Space refuse to build"
    admitted = [v for v in ZEROGPU_TORCH if torch.contains(v)]
    assert "2.8.0" in admitted, (str(torch), admitted)
    assert all(torch.contains(v) for v in ("2.6.0", "2.7.1")), "transformers 5 needs torch >= 2.6"
    assert not torch.contains("2.5.1")  # transformers 5 switches torch off below 2.6: do not let a Space pick it
    local = _requirements(ROOT / "constraints.txt")["torch"]
    pins = [s.version for s in local.specifier if s.operator == "=="]
    assert pins == ["2.13.0"], str(local)
    assert torch.contains(pins[0])
    assert Version(importlib.metadata.version("torch")).base_version == pins[0]


def test_install_commands_use_the_constraints():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = ("python3 -m venv .venv && .venv/bin/pip install -q -r requirements-test.txt -c constraints.txt "
                "&& .venv/bin/python -m pytest -q")
    assert test_cmd in readme
    assert [line for line in ci.splitlines() if "pytest" in line and not line.startswith("#")] == [test_cmd]
    assert ("python3 -m venv .venv && .venv/bin/pip install -r requirements.txt -c constraints.txt "
            "&& .venv/bin/python app.py") in readme
    assert "-r requirements.txt" in (ROOT / "requirements-test.txt").read_text()


# Standard-library names that appeared after Python 3.10.
_NEW_MODULES = {"tomllib", "wsgiref.types"}
_NEW_NAMES = {("typing", "Self"), ("typing", "Never"), ("typing", "LiteralString"), ("typing", "Required"),
              ("typing", "NotRequired"), ("typing", "assert_type"), ("typing", "reveal_type"),
              ("typing", "TypeVarTuple"), ("typing", "Unpack"), ("datetime", "UTC"), ("enum", "StrEnum"),
              ("enum", "verify"), ("asyncio", "TaskGroup"), ("asyncio", "timeout"), ("hashlib", "file_digest"),
              ("itertools", "batched"), ("contextlib", "chdir"), ("operator", "call"), ("math", "exp2"),
              ("math", "cbrt")}
_NEW_BUILTINS = {"ExceptionGroup", "BaseExceptionGroup"}


def _python_sources() -> list[Path]:
    files = [ROOT / "app.py", *sorted((ROOT / "emorank").rglob("*.py")), *sorted((ROOT / "tests").glob("*.py"))]
    return [f for f in files if f.is_file()]


def test_code_parses_and_imports_as_python_3_10():
    problems = []
    for path in _python_sources():
        rel = path.relative_to(ROOT)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(rel), feature_version=(3, 10))
        except SyntaxError as err:  # e.g. except*, PEP 646 star-unpacking in subscripts
            problems.append(f"{rel}:{err.lineno}: {err.msg}")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [f"{rel}:{node.lineno}: import {a.name}" for a in node.names if a.name in _NEW_MODULES]
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module in _NEW_MODULES:
                    problems.append(f"{rel}:{node.lineno}: from {node.module}")
                problems += [f"{rel}:{node.lineno}: from {node.module} import {a.name}" for a in node.names
                             if (node.module, a.name) in _NEW_NAMES]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if (node.value.id, node.attr) in _NEW_NAMES:
                    problems.append(f"{rel}:{node.lineno}: {node.value.id}.{node.attr}")
            elif isinstance(node, ast.Name) and node.id in _NEW_BUILTINS:
                problems.append(f"{rel}:{node.lineno}: {node.id}")
    assert not problems, "Python 3.11+ only code (the Space runs 3.10):\n" + "\n".join(problems)


def test_spaces_is_optional():
    """`spaces` exists only on a Space: the app imports it optionally, and it is no requirement of ours."""
    import emorank.app.serving as ui

    assert "spaces" not in _requirements(ROOT / "requirements.txt")
    if importlib.util.find_spec("spaces") is not None:
        pytest.skip("the `spaces` package is installed here; the no-op path cannot be checked")

    def f(x):
        return x + 1

    assert ui.gpu(f) is f and ui.gpu(duration=60)(f) is f  # no `spaces` here: a no-op decorator
