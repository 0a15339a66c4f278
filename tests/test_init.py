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
    for name in emorank.__all__:
        assert getattr(emorank, name) is not None
    assert set(emorank.LOSSES) == {"sce", "rnc", "supcon", "smooth", "ra", "rnc-sce"}
    with pytest.raises(AttributeError, match="not_a_name"):
        emorank.not_a_name
