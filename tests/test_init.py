import subprocess
import sys

import pytest

import emorank


def test_import_is_light_and_side_effect_free():
    code = ("import sys, emorank; heavy = [m for m in ('torch', 'gradio', 'umap', 'transformers', 'opensmile') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_resolve_lazily():
    """Each public name is the very object its module defines, and only asking for it imports that module."""
    import importlib

    for name in emorank.__all__:
        value = getattr(emorank, name)
        if name == "__version__":
            assert isinstance(value, str) and value.count(".") >= 1
            continue
        assert value is getattr(importlib.import_module(emorank._LAZY[name]), name), name
        assert getattr(value, "__name__", name) == name  # a class or function under its own name
    assert set(emorank.LOSSES) == {"sce", "rnc", "supcon", "smooth", "ra", "rnc-sce"}
    with pytest.raises(AttributeError, match="not_a_name"):
        emorank.not_a_name
    code = ("import sys, emorank; module = emorank._LAZY['TrainConfig']; before = module in sys.modules; "
            "config = emorank.TrainConfig(); print(before, module in sys.modules, type(config).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "TrainConfig"]


def test_train_and_evaluate_stay_functions_after_their_modules_are_imported():
    """The functions `train` and `evaluate` live in modules of other names (training.trainer, evaluation.evaluate),
    so importing those modules never rebinds the package's attribute to a module (it did in the flat layout)."""
    code = ("from emorank import TrainConfig, train, Collection, evaluate; "
            "print(callable(train) and train.__name__ == 'train', callable(evaluate) and evaluate.__name__ == 'evaluate')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
