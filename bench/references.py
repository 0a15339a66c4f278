"""Write each shipped checkpoint's typicality reference (``reference.npz``, see emorank.search.typicality): its
corpus's dev clips as neighbours, its test clips' scores as the calibration the app's "can this estimate be
trusted?" threshold comes from (the 5th percentile).

    python bench/references.py --demo data/demo/corpus/manifest.csv --ravdess /path/to/ravdess [--cache FILE]

The demo manifest is the app's own corpus (`ensure_demo`: 1000 clips, seed 0, the shipped synthetic checkpoints'
training corpus); RAVDESS is read with its fixed actor split (dev 17-19, test 20-24). Cheap: eGeMAPS features of
the dev and test clips (cached), then a few matrix products.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python bench/references.py

from emorank.data.corpora import load_corpus  # noqa: E402
from emorank.data.manifest import read_csv_manifest  # noqa: E402
from emorank.encoders.cache import FeatureCache  # noqa: E402
from emorank.model.card import checkpoint_dataset  # noqa: E402
from emorank.model.checkpoint import read_checkpoint_config  # noqa: E402
from emorank.model.core import EmotionRankCLAP  # noqa: E402
from emorank.search.typicality import audio_reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", help="the demo corpus manifest (for checkpoints trained on it)")
    parser.add_argument("--ravdess", help="the RAVDESS folder (for checkpoints trained on it)")
    parser.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    parser.add_argument("--cache", help="feature cache (default: the emorank default)")
    args = parser.parse_args()
    corpora = {"demo": (lambda: read_csv_manifest(args.demo)) if args.demo else None,
               "ravdess": (lambda: load_corpus("ravdess", args.ravdess)) if args.ravdess else None}
    loaded = {}
    with FeatureCache(args.cache) as cache:
        for folder in sorted(p.parent for p in Path(args.checkpoints).glob("*/config.json")):
            corpus = checkpoint_dataset(read_checkpoint_config(folder)) or "demo"
            if corpora.get(corpus) is None:
                print(f"{folder.name}: trained on {corpus}, not given: skipped")
                continue
            manifest = loaded.setdefault(corpus, corpora[corpus]())
            ref = audio_reference(EmotionRankCLAP.from_checkpoint(folder), manifest, cache, corpus=corpus)
            path = ref.save(folder)
            print(f"{folder.name}: {path.name} from {corpus} (dev {ref.meta['clips'][0]}, test "
                  f"{ref.meta['clips'][1]} clips), threshold (95th percentile of the test distances) {np.percentile(ref.calibration, 95):.2f}")


if __name__ == "__main__":
    main()
