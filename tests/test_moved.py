"""Old module paths (emorank 0.1's flat layout) keep working for one release, with a DeprecationWarning that names
the new place; the new paths never warn."""
import importlib
import subprocess
import sys
import warnings

import pytest

from emorank import _moved

# Names the README, model cards and pushed checkpoints of 0.1 used through the old paths.
OLD_NAMES = [
    ("emorank.datasets", "load_ravdess", "emorank.data.acted"),
    ("emorank.datasets", "Manifest", "emorank.data.manifest"),
    ("emorank.datasets", "load_hf_dataset", "emorank.data.hf"),
    ("emorank.data.hub", "load_hf_dataset", "emorank.data.hf"),
    ("emorank.train", "TrainConfig", "emorank.training.trainer"),
    ("emorank.evaluate", "evaluate", "emorank.evaluation.evaluate"),
    ("emorank.zeroshot", "uar", "emorank.evaluation.zeroshot"),
    ("emorank.systems", "SYSTEMS", "emorank.training.systems"),
    ("emorank.viz", "embedding_map", "emorank.evaluation.maps"),
    ("emorank.viz", "ordinality_figure", "emorank.evaluation.figures"),
    ("emorank.demo", "ensure_demo", "emorank.app.build"),
    ("emorank.demo", "Workspace", "emorank.app.workspace"),
    ("emorank.hub", "push_to_hub", "emorank.model.card"),
    ("emorank.features", "FeatureCache", "emorank.encoders.cache"),
    ("emorank.corpus", "build_demo_corpus", "emorank.data.synthetic"),
    ("emorank.retrieval", "Collection", "emorank.search.retrieval"),
]


def _fresh_import(name: str):
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize("old,name,new", OLD_NAMES)
def test_an_old_path_still_gives_the_same_object_and_warns_with_the_new_one(old, name, new):
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to .*{new}"):
        module = _fresh_import(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_every_old_path_resolves_and_every_target_exists():
    for old, targets in _moved.MOVED.items():
        for target in targets:
            importlib.import_module(target)  # a typo in MOVED fails here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = _fresh_import(old)
        assert dir(module), old


def test_an_unknown_name_on_an_old_path_says_where_the_module_went():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = _fresh_import("emorank.train")
    with pytest.raises(AttributeError, match=r"'emorank.train' \(moved to emorank.training.trainer\) has no attribute"):
        module.no_such_name


def test_from_import_of_an_old_path_works_in_a_fresh_interpreter_and_new_paths_do_not_warn():
    code = ("import warnings; warnings.simplefilter('error')\n"
            "import emorank.data, emorank.training.trainer, emorank.evaluation.evaluate, emorank.app.workspace\n"
            "warnings.simplefilter('default')\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    from emorank.datasets import load_ravdess\n"
            "print(load_ravdess.__module__, [str(x.category.__name__) for x in w])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["emorank.data.acted", "['DeprecationWarning']"]


def test_a_real_module_always_wins_over_the_alias():
    assert not any(name in _moved.MOVED for name in ("emorank.model", "emorank.metrics", "emorank.encoders",
                                                      "emorank.captions", "emorank.losses", "emorank.data"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import emorank.metrics as metrics
    assert metrics.label_match.__module__ == "emorank.metrics.recall"
