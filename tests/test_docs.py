"""The README and docs/ stay true: their shell commands run as written, their links resolve, their Python names exist.

Every fenced block of README.md and docs/*.md names its language. A shell block (```bash, ```sh, ```console) runs
in a fresh copy of the repository (what a reader has after cloning and `pip install -e .`), in document order
within its page, with `emorank`, `python` and `python3` on PATH, offline, each under a timeout; a failing command
fails its test with the block's output. Blocks that cannot run here say why with a tag after the language, which
GitHub ignores when it renders the page::

    ```bash corpus          needs a real corpus (docs/corpora.md)
    ```bash network         needs the internet (downloads, the Hub)
    ```bash install         creates a virtual environment or installs packages
    ```bash server          starts a long-running server (the app, the app benchmarks)
    ```bash gpu             needs GPUs
    ```bash slow            runs for minutes (full-size training, comparisons, benchmarks)

Such blocks are skipped, each reported with its tags (`pytest -rs` lists them); an unknown tag fails. Python
blocks are not run (most need a corpus or a server), but they must parse, and every `emorank` module and name they
import must exist at its current path (not an old path kept for one release).
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"bash", "sh", "console"}
TAGS = {
    "corpus": "needs a real corpus",
    "network": "needs the internet",
    "install": "creates a virtual environment or installs packages",
    "server": "starts a long-running server",
    "gpu": "needs GPUs",
    "slow": "runs for minutes",
}
BLOCK_TIMEOUT_S = 600  # one block, on a busy 2-core machine
README_MAX_LINES = 250
# What a fresh clone does not have (.gitignore): environments and caches anywhere, the app's data and outputs at the
# top level only (emorank/data/ is code).
_ANYWHERE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache", "*.egg-info",
                                   ".emorank_cache", "screenshots")
_TOP_LEVEL = {"data", "runs", "cache", "examples", "build", "tmp"}


# ----------------------------------------------------------------------------------------------- fenced blocks
@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    tags: tuple[str, ...]
    text: str

    @property
    def where(self) -> str:
        name = f"docs/{self.page.name}" if self.page.parent.name == "docs" else self.page.name
        return f"{name}:{self.line}"

    @property
    def commands(self) -> str:
        """The shell text to run: the block as written, or the `$ ` lines of a console block."""
        if self.language != "console":
            return self.text
        return "\n".join(line[2:] for line in self.text.splitlines() if line.startswith("$ "))


_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


def fenced_blocks(text: str, page: Path) -> list[Block]:
    """Every fenced code block of a Markdown text, with its language and tags (the info string's other words)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.groups()
        words = info.split()
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        blocks.append(Block(page, i + 1, words[0] if words else "", tuple(words[1:]), "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def block_problems(block: Block) -> list[str]:
    if not block.language:
        return [f"{block.where}: a fenced block without a language (```bash, ```python, ```text, ...)"]
    if block.tags and block.language not in SHELLS:
        return [f"{block.where}: tags {block.tags} on a {block.language} block (tags mark shell blocks only)"]
    unknown = [t for t in block.tags if t not in TAGS]
    if unknown:
        return [f"{block.where}: unknown tag(s) {unknown}; known: {', '.join(TAGS)}"]
    return []


ALL_BLOCKS = [b for page in PAGES for b in fenced_blocks(page.read_text(encoding="utf-8"), page)]
SHELL_BLOCKS = [b for b in ALL_BLOCKS if b.language in SHELLS]
PYTHON_BLOCKS = [b for b in ALL_BLOCKS if b.language == "python"]


# --------------------------------------------------------------------------------------------- running blocks
def make_checkout(dest: Path, root: Path = ROOT) -> Path:
    """A fresh copy of the repository plus a bin folder with what `pip install -e .` gives a reader."""
    clone = dest / "emorank"

    def not_in_a_clone(folder: str, names: list[str]) -> set[str]:
        top = _TOP_LEVEL & set(names) if Path(folder) == root else set()
        return set(_ANYWHERE(folder, names)) | top

    shutil.copytree(root, clone, ignore=not_in_a_clone, symlinks=True)
    bin_dir = dest / "bin"
    bin_dir.mkdir()
    shims = {"emorank": f'"{sys.executable}" -m emorank', "python": f'"{sys.executable}"',
             "python3": f'"{sys.executable}"'}
    for name, command in shims.items():
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nPYTHONPATH="{clone}${{PYTHONPATH:+:$PYTHONPATH}}" exec {command} "$@"\n')
        shim.chmod(0o755)
    return clone


def block_env(dest: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PATH": f"{dest / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "EMORANK_CACHE": str(dest.parent / "features.sqlite"),  # shared by the pages: a reader's cache persists too
        "EMORANK_HF_CACHE": str(dest / "hf-cache"),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
    })
    env.pop("PYTHONPATH", None)
    return env


def run_block(block: Block, clone: Path, env: dict[str, str], timeout: float = BLOCK_TIMEOUT_S) -> None:
    """Run one shell block with `bash -e -o pipefail` in `clone`; fail the test with its output when it fails."""
    try:
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.commands], cwd=clone, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"{block.where}: still running after {timeout:.0f} s\n{block.commands}\n--- output ---\n"
                    f"{out[-3000:]}", pytrace=False)
    if done.returncode != 0:
        out = (done.stdout + done.stderr)[-4000:]
        pytest.fail(f"{block.where}: exit status {done.returncode}\n{block.commands}\n--- output ---\n{out}",
                    pytrace=False)


@dataclass
class PageRun:
    """The runnable blocks of one page, run in order in one fresh checkout (a later block may use an earlier one's
    output, as a reader following the page would)."""

    blocks: list[Block]
    dest: Path
    clone: Path | None = None
    done: int = 0
    failed: str | None = None
    env: dict = field(default_factory=dict)

    def run_through(self, block: Block) -> None:
        if self.clone is None:
            self.dest.mkdir(parents=True)
            self.clone = make_checkout(self.dest)
            self.env = block_env(self.dest)
        target = self.blocks.index(block)
        while self.done <= target:
            current = self.blocks[self.done]
            if self.failed:
                pytest.fail(f"{block.where} follows {self.failed}, which failed", pytrace=False)
            try:
                run_block(current, self.clone, self.env)
            except BaseException:
                self.failed = current.where
                raise
            finally:
                self.done += 1


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[Path, PageRun]:
    base = tmp_path_factory.mktemp("docs")
    runnable: dict[Path, list[Block]] = {}
    for b in SHELL_BLOCKS:
        if not b.tags:
            runnable.setdefault(b.page, []).append(b)
    return {page: PageRun(blocks, base / page.stem) for page, blocks in runnable.items()}


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=[b.where for b in SHELL_BLOCKS])
def test_shell_block_runs_as_written(block, pages):
    problems = block_problems(block)
    assert not problems, problems[0]
    if block.tags:
        pytest.skip(f"{block.where} [{' '.join(block.tags)}]: " + "; ".join(TAGS[t] for t in block.tags))
    pages[block.page].run_through(block)


def test_every_block_names_its_language_and_known_tags():
    problems = [p for b in ALL_BLOCKS for p in block_problems(b)]
    assert not problems, "\n".join(problems)


def test_some_blocks_run():
    """The README's quick start is runnable: a page of tagged-only commands would test nothing."""
    readme = [b for b in SHELL_BLOCKS if b.page.name == "README.md" and not b.tags]
    assert readme and any("emorank train" in b.text for b in readme)


# ------------------------------------------------------------------------------------------ python blocks
def emorank_imports(code: str) -> list[tuple[str, list[str]]]:
    """(module, names) of every `import emorank...` and `from emorank... import ...` in a code block."""
    out = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "emorank":
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split(".")[0] == "emorank"]
    return out


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.where for b in PYTHON_BLOCKS])
def test_python_block_parses_and_imports_names_that_exist(block):
    from emorank._moved import MOVED

    try:
        imports = emorank_imports(block.text)
    except SyntaxError as e:
        pytest.fail(f"{block.where}: not valid Python: {e}", pytrace=False)
    for module, names in imports:
        assert module not in MOVED, f"{block.where}: {module} moved to {' / '.join(MOVED[module])}"
        mod = importlib.import_module(module)
        missing = [n for n in names if not hasattr(mod, n)]
        assert not missing, f"{block.where}: {module} has no {missing}"


# -------------------------------------------------------------------------------------------------- links
def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed, spaces -> hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # [text](url) -> text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def outside_fences(text: str) -> list[str]:
    out, inside = [], None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if m and (inside is None or m.group(2)[0] == inside[0] and len(m.group(2)) >= len(inside)):
            inside = None if inside else m.group(2)
            continue
        if inside is None:
            out.append(line)
    return out


def prose(text: str) -> str:
    """The text outside fenced blocks and inline code (links there are examples, not links)."""
    return "\n".join(re.sub(r"`[^`]*`", "", line) for line in outside_fences(text))


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in outside_fences(page.read_text(encoding="utf-8")):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = github_slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*<?(\S+?)>?\s*$",
                   re.MULTILINE)


def link_problems(page: Path, root: Path = ROOT) -> list[str]:
    """Relative links of a page that point at no file in the repository, or at no heading of a Markdown page."""
    problems = []
    for m in _LINK.finditer(prose(page.read_text(encoding="utf-8"))):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        name = f"{page.relative_to(root)}: {target}"
        if root.resolve() not in (dest, *dest.parents):
            problems.append(f"{name} points outside the repository")
        elif not dest.exists():
            problems.append(f"{name} points to a file that does not exist")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            problems.append(f"{name}: no heading #{fragment} in {dest.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page):
    problems = link_problems(page)
    assert not problems, "\n".join(problems)


def test_readme_stands_alone():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < README_MAX_LINES, "the README is for the first ten minutes: move detail to docs/"
    for page in PAGES:
        assert "../shared" not in page.read_text(encoding="utf-8"), f"{page.name} names a folder users do not have"


def test_the_architecture_page_lists_the_layers_the_layering_test_enforces():
    """docs/architecture.md's layer table says what tests/test_layout.py's LAYERS says, subpackage for subpackage."""
    spec = importlib.util.spec_from_file_location("_layout", ROOT / "tests" / "test_layout.py")
    layout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layout)
    enforced = {name: layer for name, layer in layout.LAYERS.items() if name and not name.startswith("_")
                and name != "__main__"}
    documented = {}
    for line in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\|\s*(\d+)\s*\|([^|]*)\|", line)
        if m and int(m.group(1)) < 6:
            documented.update({name: int(m.group(1)) for name in re.findall(r"`(\w+)`", m.group(2))})
    assert documented == enforced


# ------------------------------------------------------------------------ the checks above can fail
def test_the_checks_find_broken_commands_links_and_tags(tmp_path):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    (tmp_path / "there.md").write_text("# A heading, with `code`\n\n## Twice\n\n## Twice\n")
    page.write_text("# Page\n\n"
                    "[ok](../there.md#a-heading-with-code) [ok](../there.md#twice-1) [ok](#page) [web](https://x.y)\n"
                    "[gone](missing.md) [bad](../there.md#nope) [self](#nowhere) [out](../../elsewhere.md)\n"
                    "`[code](not-a-link.md)`\n\n"
                    "```bash\necho visible-output\nfalse\necho never\n```\n\n"
                    "```bash slwo\nexit 1\n```\n\n```\nno language\n```\n")
    problems = link_problems(page, root=tmp_path)
    assert len(problems) == 4, problems
    assert [p.split(": ")[1].split()[0] for p in problems] == ["missing.md", "../there.md#nope", "#nowhere",
                                                                "../../elsewhere.md"]

    broken, unknown, bare = fenced_blocks(page.read_text(), page)
    assert block_problems(broken) == []
    assert "unknown tag" in block_problems(unknown)[0] and "without a language" in block_problems(bare)[0]
    with pytest.raises(pytest.fail.Exception, match=r"(?s)exit status 1.*visible-output") as failure:
        run_block(broken, tmp_path, dict(os.environ), timeout=30)
    assert "never" not in str(failure.value).split("--- output ---")[1]
    with pytest.raises(pytest.fail.Exception, match="still running"):
        run_block(Block(page, 1, "bash", (), "sleep 5\n"), tmp_path, dict(os.environ), timeout=0.5)


def test_python_checks_find_old_module_paths():
    imports = emorank_imports("from emorank.datasets import load_ravdess\nimport emorank.train\nimport numpy\n")
    assert imports == [("emorank.datasets", ["load_ravdess"]), ("emorank.train", [])]
    from emorank._moved import MOVED
    assert all(module in MOVED for module, _ in imports)
