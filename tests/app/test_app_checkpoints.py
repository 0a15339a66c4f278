"""The checkpoints the app lists: one unreadable folder never stops the app from starting or breaks a refresh."""
import json
import logging
import shutil
from pathlib import Path


from emorank.app.build import find_checkpoints
from test_app import load_app

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints" / "emotionrankclap"

# config.json bodies that are valid JSON but not an object, or not JSON at all
BAD_CONFIGS = {"list": "[1, 2, 3]", "number": "42", "string": '"emorank"', "null": "null",
               "binary": b"\x00\xff\xfe\x89PNG\r\n\x1a\n" + bytes(range(256)),
               "model-a-list": None}  # a well-formed header whose "model" is not an object


def plant_bad_checkpoints(shipped: Path, runs: Path) -> list[str]:
    """A good shipped checkpoint plus one bad folder per BAD_CONFIGS body, in the shipped and in the runs folder."""
    shutil.copytree(SHIPPED, shipped / "good")
    good = json.loads((SHIPPED / "config.json").read_text())
    for name, body in BAD_CONFIGS.items():
        for folder in (shipped / f"bad-{name}", runs / f"bad-{name}" / "checkpoint"):
            shutil.copytree(SHIPPED, folder)
            cfg = folder / "config.json"
            if body is None:
                cfg.write_text(json.dumps({**good, "model": [1, 2], "system": "x"}))
            elif isinstance(body, bytes):
                cfg.write_bytes(body)
            else:
                cfg.write_text(body)
    return [f"bad-{n}" for n in BAD_CONFIGS] + [f"runs/bad-{n}" for n in BAD_CONFIGS]


def test_bad_checkpoint_configs_are_skipped_with_one_warning_each(tmp_path, caplog):
    shipped, runs = tmp_path / "ck", tmp_path / "runs"
    bad = plant_bad_checkpoints(shipped, runs)
    with caplog.at_level(logging.WARNING, logger="emorank.app.build"):
        found = find_checkpoints([shipped], runs)
    assert list(found) == ["good"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(bad) and all("\n" not in w and "skipped" in w for w in warnings), warnings
    caplog.clear()
    seen: set = set()
    with caplog.at_level(logging.WARNING, logger="emorank.app.build"):
        find_checkpoints([shipped], runs, warned=seen)
        find_checkpoints([shipped], runs, warned=seen)  # a refresh: the same folders are not warned about again
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == len(bad)


def test_the_app_starts_and_refreshes_with_bad_checkpoint_folders(tmp_path):
    shipped, data = tmp_path / "ck", tmp_path / "data"
    bad = plant_bad_checkpoints(shipped, data / "runs")
    app = load_app()
    demo, h = app.create(str(data), checkpoint_dirs=[shipped], build=False)  # lays out the page: must not raise
    assert [n for _, n in h.checkpoint_choices()] == ["good"]
    updates = h.refresh_checkpoints("good", "good", "(none)", ["good"], "(none)", "good")
    listed = {v for u in updates for _, v in u["choices"]}
    assert listed <= {"good", "(none)"} and not set(bad) & listed
    assert [c["name"] for c in h.api_checkpoints()] == ["good"]
    # a folder that turns bad after it was listed: the lists and cards still answer, without it
    (shipped / "good" / "config.json").write_text("[1, 2, 3]")
    h.ws._checkpoints["good"] = (shipped / "good").resolve()  # as listed before it turned bad
    assert h.ws.checkpoint_label("good") == "good" and "cannot" in h.card("good")
    updates = h.refresh_checkpoints("good", "good", "(none)", ["good"], "(none)", "good")
    assert all(u["choices"] in ([], [("(none)", "(none)")]) for u in updates)
    demo.close()
