"""The dataset folder as a publishable dataset: near-duplicates, splits, licences, metadata, card.

DatasetPipeline is fed labelled rows directly (real images, the real model, real files); the
crawl of a journal-like site is in test_dataset_crawl.py.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard
from PIL import Image
from scrapy.utils.test import get_crawler

from medcrawl.config import Config, LoadedModel, model_location
from medcrawl.corrections import MANIFEST_FIELDS, DatasetDir
from medcrawl.items import ImageItem
from medcrawl.model.labelling import label_items
from medcrawl.pipelines.dataset import DatasetPipeline, build_info
from medcrawl.splits import parse_splits, split_for
from tests.support.oneoff_assets import mri_png, photo_jpeg
from training.data import scan

SPLITS = (("train", 0.5), ("validation", 0.25), ("test", 0.25))


def resized(data: bytes, scale: float, quality: int = 85) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.resize((round(image.width * scale), round(image.height * scale)))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def document_in(split: str, avoid: tuple[str, ...] = ()) -> str:
    """A page URL whose documents go to ``split``."""
    return next(url for n in range(1000) if split_for(url := f"http://j.test/article/{n}", SPLITS) == split
                and url not in avoid)


class Folder:
    """A dataset folder written by the crawl's pipeline, run by hand one row at a time."""

    def __init__(self, root: Path, classifier, **settings):
        self.root, self.classifier = root, classifier
        self.config = Config(model=model_location()[0], dataset_dir=str(root), **settings)
        self.pipeline = self.open()

    def open(self) -> DatasetPipeline:
        pipeline = DatasetPipeline(self.root, 0.0, get_crawler().stats, self.config,
                                   build=build_info(self.config, LoadedModel(self.classifier, self.classifier.threshold, 0.0),
                                                    0.0))
        pipeline.open_spider()
        return pipeline

    def add(self, data: bytes, page: str, name: str, **fields) -> ImageItem:
        item = ImageItem(image_url=f"{page}/{name}", source_url=page, body=data, path=f"full/{name}", **fields)
        label_items(self.classifier, [item], min_size=0, preview=128)
        return self.pipeline.process_item(item)

    def close(self) -> None:
        self.pipeline.close_spider()

    def manifest(self) -> list[dict]:
        with open(self.root / "manifest.csv", newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def images(self) -> set[str]:
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                if p.is_file() and p.suffix in (".jpg", ".png")}


def test_a_later_larger_copy_replaces_the_kept_one(tmp_path, classifier):
    folder = Folder(tmp_path, classifier, dataset_splits=SPLITS)
    first, second, third = document_in("test"), document_in("train"), document_in("validation")
    small = folder.add(resized(photo_jpeg(), 0.5), first, "small.jpg")
    assert small.duplicate_of == "" and folder.images() == {f"test/{small.label}/{small.sha256}.jpg"}
    large = folder.add(photo_jpeg(), second, "large.jpg")
    assert large.duplicate_of == ""               # the kept image now
    kept = f"test/{large.label}/{large.sha256}.jpg"          # the group's first document's split
    assert folder.images() == {kept}
    later = folder.add(resized(photo_jpeg(), 0.75, quality=60), third, "medium.jpg")
    assert later.duplicate_of == large.sha256
    rows = {r["image_url"].rsplit("/", 1)[1]: r for r in folder.manifest()}
    assert {name: (r["file"], r["duplicate_of"], r["split"]) for name, r in rows.items()} == {
        "small.jpg": (kept, large.sha256, "test"), "large.jpg": (kept, "", "test"),
        "medium.jpg": (kept, large.sha256, "test")}
    assert folder.pipeline.stats.get_value("medcrawl/dataset/replaced_by_larger") == 1


def test_groups_persist_in_the_folder_across_runs(tmp_path, classifier):
    folder = Folder(tmp_path, classifier)
    large = folder.add(photo_jpeg(), "http://j.test/a", "large.jpg")
    folder.close()
    assert (tmp_path / "near-duplicates.csv").exists()
    folder.pipeline = folder.open()                  # a later crawl, or a resumed one
    again = folder.add(resized(photo_jpeg(), 0.4), "http://j.test/b", "thumb.jpg")
    assert again.duplicate_of == large.sha256
    assert folder.images() == {f"{large.label}/{large.sha256}.jpg"}


def test_exact_mode_keeps_resized_copies_and_one_file_per_content(tmp_path, classifier):
    folder = Folder(tmp_path, classifier, dataset_dedupe="exact", dataset_splits=SPLITS)
    first, second = document_in("train"), document_in("test")
    large = folder.add(photo_jpeg(), first, "a.jpg")
    small = folder.add(resized(photo_jpeg(), 0.5), second, "b.jpg")
    same = folder.add(photo_jpeg(), second, "c.jpg")
    assert (large.duplicate_of, small.duplicate_of, same.duplicate_of) == ("", "", "")
    assert folder.images() == {f"train/{large.label}/{large.sha256}.jpg", f"test/{small.label}/{small.sha256}.jpg"}


def test_off_mode_lets_the_same_file_into_two_splits(tmp_path, classifier):
    folder = Folder(tmp_path, classifier, dataset_dedupe="off", dataset_splits=SPLITS)
    a = folder.add(photo_jpeg(), document_in("train"), "a.jpg")
    folder.add(photo_jpeg(), document_in("test"), "a.jpg")
    folder.add(resized(photo_jpeg(), 0.5), document_in("test"), "b.jpg")
    assert {f"train/{a.label}/{a.sha256}.jpg", f"test/{a.label}/{a.sha256}.jpg"} <= folder.images()
    assert len(folder.images()) == 3 and not (tmp_path / "near-duplicates.csv").exists()


def test_licence_filter_admits_only_the_listed_licences(tmp_path, classifier):
    folder = Folder(tmp_path, classifier, dataset_licenses=("CC-BY-4.0", "CC0-1.0"))
    admitted = folder.add(photo_jpeg(), "http://j.test/a", "a.jpg", license="CC-BY-4.0")
    folder.add(mri_png(), "http://j.test/b", "b.png", license="cc0-1.0")     # SPDX ids ignore case
    refused = [folder.add(resized(mri_png(), 0.5), "http://j.test/c", "c.jpg", license="CC-BY-NC-4.0"),
               folder.add(resized(photo_jpeg(), 0.3), "http://j.test/d", "d.jpg")]
    assert {r["license"] for r in folder.manifest()} == {"CC-BY-4.0", "cc0-1.0"}
    assert len(folder.images()) == 2 and admitted.status == "ok"
    assert all(item.status == "ok" and item.duplicate_of == "" for item in refused)   # their feed rows stay


def test_splits_follow_documents_deterministically():
    urls = [f"http://j.test/article/{n}.pdf" for n in range(4000)]
    assert [split_for(u, SPLITS) for u in urls] == [split_for(u, SPLITS) for u in urls]
    shares = Counter(split_for(u, SPLITS) for u in urls)
    assert all(abs(shares[name] / len(urls) - share) < 0.03 for name, share in SPLITS), shares
    assert split_for("http://j.test/a", ()) == ""
    assert parse_splits(["train:0.8", " validation:0.1", "test:0.1"]) == (("train", 0.8), ("validation", 0.1),
                                                                           ("test", 0.1))


@pytest.mark.parametrize("values, reason", [
    (["train:0.8", "test:0.1"], "add up to 0.9"), (["train:0.5", "train:0.5"], "named twice"),
    (["train=0.8", "test:0.2"], "name:share"), (["Train!:1"], "lower-case name")])
def test_bad_splits_say_why(values, reason):
    with pytest.raises(ValueError, match=reason):
        parse_splits(values)


@pytest.fixture
def published(tmp_path, classifier) -> Folder:
    folder = Folder(tmp_path / "ds", classifier, dataset_splits=SPLITS)
    folder.add(photo_jpeg(), document_in("train"), "photo.jpg", caption="Grace Hopper", license="CC0-1.0",
               alt="a portrait")
    folder.add(resized(photo_jpeg(), 0.5), document_in("test"), "photo-small.jpg")
    folder.add(mri_png(), document_in("test"), "mri.png", caption="Figure 1. MRI", license="CC-BY-4.0")
    folder.add(resized(mri_png(), 1.0, quality=95), document_in("validation"), "mri.jpg")
    folder.close()
    return folder


def test_imagefolder_loads_splits_and_columns(published):
    loaded = datasets.load_dataset("imagefolder", data_dir=str(published.root))
    kept = [r for r in published.manifest() if not r["duplicate_of"]]
    assert set(loaded) == {r["split"] for r in kept}
    for split, rows in loaded.items():
        assert {"image", "label", "modality", "caption", "alt", "license", "source_url", "image_url",
                "compound"} <= set(rows.column_names)
        assert sorted(rows["image_url"]) == sorted(r["image_url"] for r in kept if r["split"] == split)
    by_url = {row["image_url"]: row for split in loaded.values() for row in split}
    photo = next(row for url, row in by_url.items() if url.endswith("/photo.jpg"))
    assert (photo["caption"], photo["license"], photo["alt"]) == ("Grace Hopper", "CC0-1.0", "a portrait")
    assert photo["image"].size == Image.open(io.BytesIO(photo_jpeg())).size


def test_card_header_is_what_the_hub_reads(published):
    card = DatasetCard.load(published.root / "README.md")
    data = card.data.to_dict()
    assert data["task_categories"] == ["image-classification"] and data["size_categories"] == ["n<1K"]
    assert sorted(data["license"]) == ["cc-by-4.0", "cc0-1.0"]      # the kept images' licences
    kept_splits = {r["split"] for r in published.manifest() if not r["duplicate_of"]}
    assert {c["split"] for c in data["configs"][0]["data_files"]} == kept_splits
    assert "| train |" in card.text and published.classifier.name in card.text
    assert "j.test" in card.text
    by_readme = datasets.load_dataset(str(published.root))      # the card's configs name the splits
    assert set(by_readme) == kept_splits


def test_corrections_and_training_work_with_split_folders(published):
    rows = published.manifest()
    kept = next(r for r in rows if r["image_url"].endswith("/photo.jpg"))
    DatasetDir(published.root).correct(kept["sha256"], "medical", "xray")
    moved = [r for r in published.manifest() if kept["sha256"] in (r["sha256"], r["duplicate_of"])]
    assert {r["file"] for r in moved} == {f"{kept['split']}/medical/{kept['sha256']}.jpg"}
    assert (published.root / moved[0]["file"]).is_file()
    metadata = (published.root / kept["split"] / "metadata.jsonl").read_text()
    lines = [json.loads(line) for line in metadata.splitlines()]
    assert {"file_name": f"medical/{kept['sha256']}.jpg", "label": "medical"}.items() <= next(
        line for line in lines if line["sha256"] == kept["sha256"]).items()
    frame = scan([published.root])
    assert set(map(Path, frame["path"])) == {published.root / p for p in published.images()}


def test_an_older_manifest_gains_the_new_columns(tmp_path, classifier):
    old = ["file", "image_url", "source_url", "sha256", "label"]
    (tmp_path / "medical").mkdir(parents=True)
    (tmp_path / "manifest.csv").write_text(",".join(old) + "\nmedical/x.png,http://a/x.png,http://a/,x,medical\n")
    folder = Folder(tmp_path, classifier)
    folder.add(photo_jpeg(), "http://j.test/a", "a.jpg")
    with open(tmp_path / "manifest.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == MANIFEST_FIELDS
    assert rows[0]["image_url"] == "http://a/x.png" and rows[1]["image_url"] == "http://j.test/a/a.jpg"


def test_without_splits_the_folder_loads_as_one_split(tmp_path, classifier):
    folder = Folder(tmp_path / "flat", classifier, dataset_min_confidence=0.0)
    folder.add(photo_jpeg(), "http://j.test/a", "a.jpg", caption="A portrait")
    folder.add(mri_png(), "http://j.test/b", "b.png")
    folder.close()
    loaded = datasets.load_dataset("imagefolder", data_dir=str(folder.root))
    assert list(loaded) == ["train"] and len(loaded["train"]) == 2
    assert sorted(loaded["train"]["caption"]) == ["", "A portrait"]
    assert "configs" not in DatasetCard.load(folder.root / "README.md").data.to_dict()


@pytest.mark.parametrize("setting, value, message", [
    ("MEDCRAWL_DATASET_DEDUPE", "fuzzy", "MEDCRAWL_DATASET_DEDUPE must be near, exact or off"),
    ("MEDCRAWL_DATASET_SPLITS", "train:0.7,test:0.2", "MEDCRAWL_DATASET_SPLITS: the shares add up to 0.9"),
    ("MEDCRAWL_SPLIT_PANELS", "maybe", "MEDCRAWL_SPLIT_PANELS must be true or false")])
def test_wrong_dataset_settings_name_themselves(setting, value, message):
    with pytest.raises(ValueError, match=message):
        Config.from_crawler(get_crawler(settings_dict={setting: value}))
