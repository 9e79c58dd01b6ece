"""The modality label in a real crawl of the fixture site: columns, dataset layout and filter, stats.

Runs with a model that has a modality head (the default model's, else the session's two-output
model); the medical / non-medical labels are checked in test_crawl.py.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import pytest

from medcrawl.labels import OTHER_MODALITY
from medcrawl.model.classifier import Classifier
from medcrawl.publish import FOLDER_FILES
from tests.support.crawls import Crawl, run_crawl, scrapy_crawl

MIN_CONFIDENCE = 0.0           # every labelled image in the dataset: low-threshold medical rows too


@pytest.fixture(scope="module")
def model(modality_model) -> Classifier:
    return Classifier.load(modality_model)


def dataset_crawl(site_server, workdir: Path, model: Classifier, *settings: str) -> Crawl:  # noqa: F811
    args = ["-a", f"start_urls={site_server.site.base}/", "-s", f"MEDCRAWL_MODEL={model.model_dir}",
            "-s", "MEDCRAWL_DATASET_DIR=dataset", "-s", f"MEDCRAWL_DATASET_MIN_CONFIDENCE={MIN_CONFIDENCE}"]
    for setting in settings:
        args += ["-s", setting]
    return run_crawl(site_server, workdir, *args)


@pytest.fixture(scope="module")
def sorted_crawl(site_server, model, tmp_path_factory) -> Crawl:  # noqa: F811
    return dataset_crawl(site_server, tmp_path_factory.mktemp("by-modality"), model,
                         "MEDCRAWL_DATASET_LAYOUT=modality")


def dataset_files(crawl: Crawl) -> set[str]:
    root = crawl.workdir / "dataset"
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.name not in FOLDER_FILES}


def manifest(crawl: Crawl) -> tuple[list[str], list[dict]]:
    with open(crawl.workdir / "dataset" / "manifest.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def file_of(row: dict, by_modality: bool) -> str:
    """Where the dataset keeps a row's image."""
    ext = Path(row["path"]).suffix[1:]
    if row["confidence"] < MIN_CONFIDENCE:
        return f"uncertain/{row['sha256']}.{ext}"
    folder = f"medical/{row['modality']}" if by_modality and row["label"] == "medical" else row["label"]
    return f"{folder}/{row['sha256']}.{ext}"


@pytest.mark.slow
def test_every_row_has_the_modality_columns(sorted_crawl, model):
    names = set(model.modalities) | {OTHER_MODALITY}
    medical = [r for r in sorted_crawl.rows if r["label"] == "medical"]
    assert medical and any(r["label"] == "non-medical" for r in sorted_crawl.rows)
    for row in sorted_crawl.rows:
        assert {"modality", "modality_confidence", "model_modality"} <= set(row)
        if row["label"] == "medical":
            assert row["modality"] in names and 0 < row["modality_confidence"] <= 1, row
            threshold_met = row["modality_confidence"] >= model.modality_min_confidence
            assert (row["modality"] != OTHER_MODALITY) == threshold_met, row
        else:
            assert (row["modality"], row["modality_confidence"]) == ("", None), row
        assert row["model_modality"] == ""
    by_url = {r["image_url"]: r for r in sorted_crawl.csv_rows}
    for row in sorted_crawl.rows:
        assert by_url[row["image_url"]]["modality"] == row["modality"]


@pytest.mark.slow
def test_modality_layout_sorts_medical_images_into_folders(sorted_crawl):
    ok = [r for r in sorted_crawl.rows if r["status"] == "ok"]
    files = dataset_files(sorted_crawl)
    assert files == {file_of(r, by_modality=True) for r in ok}
    assert any(f.startswith("medical/") and f.count("/") == 2 for f in files)
    for name in files:
        assert hashlib.sha256((sorted_crawl.workdir / "dataset" / name).read_bytes()).hexdigest() \
            == Path(name).stem
    header, rows = manifest(sorted_crawl)
    assert {"modality", "modality_confidence", "model_modality"} <= set(header)
    assert len(rows) == len(ok) and {r["file"] for r in rows} == files
    for row in rows:
        if row["label"] == "medical" and not row["file"].startswith("uncertain/"):
            assert row["file"].startswith(f"medical/{row['modality']}/")


@pytest.mark.slow
def test_stats_and_closing_log_count_modalities(sorted_crawl):
    counts = Counter(r["modality"] for r in sorted_crawl.rows if r["modality"])
    assert counts
    assert {k: v for k, v in sorted_crawl.stats.items() if k.startswith("medcrawl/modality/")} == {
        f"medcrawl/modality/{m}": n for m, n in counts.items()}
    line = next(line for line in sorted_crawl.log.splitlines() if "Harvest modalities (rows):" in line)
    for modality, n in counts.items():
        assert f"{modality}={n}" in line


@pytest.mark.slow
def test_modalities_filter_keeps_every_row_and_only_those_images(site_server, model, sorted_crawl,  # noqa: F811
                                                                 tmp_path):
    counts = Counter(r["modality"] for r in sorted_crawl.rows if r["modality"])
    wanted = counts.most_common(1)[0][0]
    absent = next(m for m in model.modalities if m not in counts)
    crawl = dataset_crawl(site_server, tmp_path, model, f"MEDCRAWL_DATASET_MODALITIES={wanted},{absent}")
    assert len(crawl.rows) == len(sorted_crawl.rows)                   # every image still gets its row
    kept = [r for r in crawl.rows if r["status"] == "ok" and r["modality"] == wanted]
    assert kept and dataset_files(crawl) == {file_of(r, by_modality=False) for r in kept}
    assert all(name.startswith(("medical/", "uncertain/")) for name in dataset_files(crawl))
    header, rows = manifest(crawl)
    assert {"modality", "modality_confidence"} <= set(header)
    assert len(rows) == len(kept) and {r["modality"] for r in rows} == {wanted}


def refused_crawl(tmp_path, model_dir, setting: str) -> str:
    """stderr of a dataset crawl with one extra setting, which must stop it at start."""
    proc = scrapy_crawl(tmp_path, "-a", "start_urls=http://127.0.0.1:9/", "-O", "rows.csv",
                        "-s", f"MEDCRAWL_MODEL={model_dir}", "-s", "MEDCRAWL_DATASET_DIR=d",
                        "-s", setting, timeout=120)
    assert proc.returncode != 0
    return proc.stderr


@pytest.mark.slow
def test_bad_modality_settings_stop_the_crawl_at_start(tmp_path, model):
    assert ("MEDCRAWL_DATASET_MODALITIES: unknown x-ray (choose from xray, ct,"
            in refused_crawl(tmp_path, model.model_dir, "MEDCRAWL_DATASET_MODALITIES=ct,x-ray"))
    assert ("MEDCRAWL_DATASET_LAYOUT must be flat or modality"
            in refused_crawl(tmp_path, model.model_dir, "MEDCRAWL_DATASET_LAYOUT=by-kind"))


@pytest.mark.slow
def test_modality_layout_needs_a_model_with_a_modality_head(tmp_path, one_output_model):
    assert ("need a model with a modality head that names them; one-output@1 has none"
            in refused_crawl(tmp_path, one_output_model, "MEDCRAWL_DATASET_LAYOUT=modality"))


@pytest.mark.slow
def test_a_correction_moves_the_image_into_its_modality_folder(sorted_crawl, tmp_path):
    import shutil
    from medcrawl.corrections import DatasetDir
    root = shutil.copytree(sorted_crawl.workdir / "dataset", tmp_path / "dataset")
    row = next(r for r in manifest(sorted_crawl)[1] if r["label"] == "non-medical")
    DatasetDir(root).correct(row["sha256"], "medical", "mri")       # layout read from the manifest
    moved = f"medical/mri/{Path(row['file']).name}"
    assert (root / moved).is_file() and not (root / row["file"]).exists()
    with open(root / "manifest.csv", newline="") as fh:
        assert {r["file"] for r in csv.DictReader(fh) if r["sha256"] == row["sha256"]} == {moved}


# ---- medcrawl classify ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from tests.support.oneoff_assets import make_folder
    return make_folder(tmp_path_factory.mktemp("mixed"))


def classify(capsys, model_dir, *args) -> tuple[int, list[dict], str]:
    """`medcrawl classify --model MODEL ARGS --format jsonl` in-process: (exit code, rows, stderr)."""
    import json
    from medcrawl.oneoff.cli import main
    code = main(["classify", "--model", str(model_dir), "--format", "jsonl", "-q", *map(str, args)])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_classify_rows_carry_the_modality(capsys, model, folder):
    _, rows, _ = classify(capsys, model.model_dir, folder)
    mri = next(r for r in rows if r["image_url"].endswith("scans/mri.png"))
    expected = model.classify_arrays([model.prepare((folder / "scans/mri.png").read_bytes())[1]])[0]
    assert (mri["label"], mri["modality"]) == ("medical", expected.modality)
    assert mri["modality_confidence"] == pytest.approx(expected.modality_confidence, abs=1e-6)
    for row in rows:
        columns = list(row)
        at = columns.index("modality")
        assert columns[at - 1:at + 3] == ["confidence", "modality", "modality_confidence", "model_modality"]
        if row["label"] != "medical":
            assert (row["modality"], row["modality_confidence"]) == ("", None)


def test_export_by_modality_and_filter(capsys, model, folder, tmp_path):
    code, rows, _ = classify(capsys, model.model_dir, folder, "--export-medical", tmp_path / "all",
                             "--by-modality")
    medical = {r["sha256"]: r for r in rows if r["label"] == "medical"}
    assert medical
    files = {p.relative_to(tmp_path / "all").as_posix() for p in (tmp_path / "all").rglob("*") if p.is_file()}
    assert files == {f"{r['modality']}/{Path(r['path']).name}" for r in medical.values()}
    assert all(r["path"] == f"{r['modality']}/{r['sha256']}.png" for r in medical.values()
               if r["format"] == "PNG")
    wanted = next(iter(medical.values()))["modality"]
    absent = next(m for m in model.modalities if m not in {r["modality"] for r in rows})
    code, rows, _ = classify(capsys, model.model_dir, folder, "--export-medical", tmp_path / "some",
                             "--modality", f"{wanted},{absent}")
    kept = {f"{r['sha256']}.{Path(r['path']).suffix[1:]}" for r in rows if r["path"]}
    assert kept == {p.name for p in (tmp_path / "some").iterdir()}
    assert kept == {f"{s}.{Path(r['path']).suffix[1:]}" for s, r in medical.items() if r["modality"] == wanted}


def test_export_options_are_checked(capsys, model, one_output_model, folder, tmp_path):
    photo = folder / "photo.jpg"
    code, rows, err = classify(capsys, model.model_dir, photo, "--by-modality")
    assert (code, rows) == (1, []) and "--by-modality need --export-medical DIR" in err
    code, _, err = classify(capsys, one_output_model, photo, "--export-medical", tmp_path, "--modality", "ct")
    assert code == 1 and "--modality need a model with a modality head; one-output@1 has none" in err
    with pytest.raises(SystemExit):
        classify(capsys, model.model_dir, photo, "--export-medical", tmp_path, "--modality", "ct,x-ray")
    assert "unknown modality in 'ct,x-ray'; choose from xray, ct," in capsys.readouterr().err


@pytest.mark.slow
def test_head_cost_benchmark_runs(modality_model, tmp_path):
    """python -m bench.bench_modality in --quick mode prints its figures (timings are not asserted)."""
    import json
    import subprocess
    import sys
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "bench.bench_modality", "--quick", "--model", str(modality_model),
                           "--json", str(tmp_path / "f.json")], capture_output=True, text=True, timeout=240,
                          cwd=root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for name in ("medical output only", "medical + modality", "with head / without"):
        assert name in proc.stdout
    assert all(f["value"] > 0 for f in json.loads((tmp_path / "f.json").read_text())["figures"])


def test_a_dicom_tag_modality_stays_next_to_the_models(capsys, model, tmp_path):
    from tests.support.dicom_files import ct_with_rescale, ultrasound_rgb, write
    files = [write(ct_with_rescale(), tmp_path / "ct.dcm"), write(ultrasound_rgb(), tmp_path / "us.dcm")]
    _, rows, _ = classify(capsys, model.model_dir, *files)
    names = set(model.modalities) | {OTHER_MODALITY}
    assert [r["format"] for r in rows] == ["dicom", "dicom"] and any(r["label"] == "medical" for r in rows)
    for row, tag in zip(rows, ("ct", "ultrasound")):
        medical = row["label"] == "medical"             # a non-medical row has no modality, not even a tag's
        assert (row["modality"], row["modality_confidence"]) == ((tag, 1.0) if medical else ("", None))
        if medical and row["model_modality"]:
            assert row["model_modality"] in names - {row["modality"]}
        else:
            assert row["model_modality"] == ""
