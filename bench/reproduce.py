"""Re-run the cheapest results table of docs/results.md with the exact commands printed beside it, and compare.

The table is "EmotionRankCLAP vs CLAP-SCE (A-V), same seed, data and encoders" on the synthetic demo corpus: two
systems x two budgets, seed 0, one model each (about 5 minutes of CPU on 2 cores). The script reads the commands
from the fenced block under that heading, runs them in a temporary folder (the same commands a reader types,
through `python -m emorank`), reads each run's eval.json and checks every number the page states:

* a cell "mean ± std" (the protocol's trials or lists) must come back within its stated std;
* a single number (recall, CCC) within 0.01 (the page rounds to 3 decimals; training is seeded, so the same code
  and packages give the same heads).

    python bench/reproduce.py                 # exit 0 when every stated number reproduces, 1 otherwise
    python bench/reproduce.py --keep DIR      # keep the corpus and runs in DIR (reused on the next call)
    python bench/reproduce.py --print-table   # also print the re-measured tables in the page's format

A mismatch means either the code changed what the command computes (then re-measure and update the page with the
printed tables) or the page was wrong.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results.md"
HEADING = "### EmotionRankCLAP vs CLAP-SCE (A-V), same seed, data and encoders"
COLUMNS = {  # the table's header -> (eval.json path, kind)
    "MMD ↓": ("alignment.mmd", "spread"),
    "Wasserstein ↓": ("alignment.wasserstein", "spread"),
    "AOC (KT) ↑": ("ordinality.aoc", "spread"),
    "VOC (KT) ↑": ("ordinality.voc", "spread"),
    "R@10 a→t": ("retrieval.a2t_r@10", "value"),
    "CCC valence": ("va_estimation.ccc_valence", "value"),
    "CCC arousal": ("va_estimation.ccc_arousal", "value"),
}
SYSTEMS = {"EmotionRankCLAP (A-V)": "emotionrankclap", "CLAP-SCE (A-V)": "clap-sce-av"}
BUDGETS = {"Paper budget": "paper", "Demo budget": "demo"}
VALUE_TOL = 0.01


def section(page: str) -> str:
    start = page.index(HEADING)
    end = page.find("\n### ", start + len(HEADING))
    return page[start:end if end > 0 else None]


def commands(text: str) -> str:
    """The first fenced shell block of the section, as written."""
    match = re.search(r"```(?:bash|sh)[^\n]*\n(.*?)```", text, re.S)
    if match is None:
        raise SystemExit(f"no command block under {HEADING!r} in {PAGE}")
    return match.group(1)


def tables(text: str) -> dict[str, dict[str, dict[str, str]]]:
    """budget -> system -> column -> cell, for each table that follows a "<budget> (...):" line."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for label, budget in BUDGETS.items():
        at = text.index(label)
        rows = [line for line in text[at:].splitlines()[1:] if line.startswith("|")]
        header = [c.strip() for c in rows[0].strip("|").split("|")]
        table = {}
        for line in rows[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] not in SYSTEMS:
                break
            table[SYSTEMS[cells[0]]] = dict(zip(header[1:], cells[1:]))
        out[budget] = table
    return out


def lookup(report: dict, path: str) -> dict | float:
    node = report
    for key in path.split("."):
        node = node[key]
    return node


def compare(stated: dict, runs: Path) -> list[tuple[str, str, str, str, str, bool]]:
    rows = []
    for budget, systems in stated.items():
        for system, cells in systems.items():
            report = json.loads((runs / f"{system}-{budget}" / "eval.json").read_text())
            for column, cell in cells.items():
                path, kind = COLUMNS[column]
                now = lookup(report, path)
                if kind == "spread":
                    mean, std = (float(x) for x in re.findall(r"-?\d+\.\d+", cell.lstrip("*"))[:2])
                    ok = abs(now["mean"] - mean) <= std
                    shown = f"{now['mean']:.4f} ± {now['std']:.4f}"
                else:
                    ok = abs(float(now) - float(cell)) <= VALUE_TOL
                    shown = f"{float(now):.3f}"
                rows.append((budget, system, column, cell, shown, ok))
    return rows


def run(block: str, workdir: Path) -> None:
    """Run the page's block with bash, `emorank` meaning this checkout's `python -m emorank`."""
    bindir = workdir / ".bin"
    bindir.mkdir(exist_ok=True)
    shim = bindir / "emorank"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m emorank \"$@\"\n")
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if (workdir / "examples" / "demo" / "manifest.csv").exists():  # a kept corpus: `corpus` refuses to overwrite
        block = "\n".join(line for line in block.splitlines() if not line.startswith("emorank corpus "))
    subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=workdir, env=env, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="folder for the corpus and runs (kept; finished runs are reused)")
    parser.add_argument("--print-table", action="store_true", help="print the re-measured tables")
    args = parser.parse_args()
    text = section(PAGE.read_text())
    block, stated = commands(text), tables(text)
    with tempfile.TemporaryDirectory(prefix="emorank-reproduce-") as tmp:
        workdir = Path(args.keep).expanduser().absolute() if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"running the commands of {PAGE.relative_to(ROOT)} ({HEADING[4:]}) in {workdir}", flush=True)
        run(block, workdir)
        rows = compare(stated, workdir / "examples" / "runs")
    width = max(len(r[2]) for r in rows)
    for budget, system, column, cell, shown, ok in rows:
        print(f"{'ok ' if ok else 'BAD'} {budget:5s} {system:16s} {column:{width}s} stated {cell:18s} now {shown}")
    if args.print_table:
        for budget in stated:
            print(f"\n{budget}:")
            for system in stated[budget]:
                print("| " + system + " | " + " | ".join(s for b, sy, _, _, s, _ in rows if b == budget and sy == system)
                      + " |")
    bad = sum(not r[5] for r in rows)
    print(f"{len(rows) - bad} of {len(rows)} stated numbers reproduce" + ("" if not bad else f"; {bad} do not"))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
