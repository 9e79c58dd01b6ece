"""`medcrawl classify` end to end: real model, real files, PDFs and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pymupdf
import pytest

from medcrawl.config import LoadedModel
from medcrawl.oneoff.cli import main
from tests.support.cli import classify
from medcrawl.items import ROW_FIELDS
from medcrawl.model import labelling
from tests.support.servers import serve_routes
from tests.support.oneoff_assets import FOLDER_EXPECTED, make_folder, make_pdf, mri_png, photo_jpeg

PHOTO, MRI = photo_jpeg(), mri_png()
PDF = make_pdf([PHOTO, MRI])
SHA = {name: hashlib.sha256(data).hexdigest() for name, data in (("photo", PHOTO), ("mri", MRI))}


@pytest.fixture(scope="session")
def classifier():
    return LoadedModel.load().classifier          # the committed model, once per session


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("mixed"))


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pdfs")
    (root / "paper.pdf").write_bytes(PDF)
    (root / "locked.pdf").write_bytes(make_pdf([PHOTO], password="secret"))
    return root


PAGE = b"""<!doctype html><html><head><title>t</title>
<meta property="og:image" content="/img/mri.png"></head><body>
<img src="img/photo.jpg" alt="portrait"><img src="/img/missing.png">
<a href="paper.pdf">the paper</a><a href="other.html">next page</a></body></html>"""
ROUTES = {"/page.html": (PAGE, "text/html; charset=utf-8"), "/img/photo.jpg": (PHOTO, "image/jpeg"),
          "/img/mri.png": (MRI, "image/png"), "/paper.pdf": (PDF, "application/pdf"),
          "/other.html": (b"<img src='/img/never.png'>", "text/html"),
          "/empty.html": (b"<html><body><p>No pictures here.</p></body></html>", "text/html")}


HITS: list[str] = []


@pytest.fixture(scope="module")
def server():
    with serve_routes(ROUTES, HITS) as base:
        yield base


def by_name(rows: list[dict], root: Path) -> dict[str, dict]:
    return {Path(r["image_url"]).relative_to(root).as_posix(): r for r in rows}


def check_verdict(row: dict, classifier) -> None:
    p = row["medical_probability"]
    assert 0.0 <= p <= 1.0 and row["model"] == classifier.name
    medical = p >= classifier.threshold
    assert row["label"] == ("medical" if medical else "non-medical")
    assert row["confidence"] == pytest.approx(p if medical else 1 - p, abs=1e-6)


def test_folder_rows(capsys, classifier, folder):
    code, rows, err = classify(capsys, folder)
    found = by_name(rows, folder)
    assert set(found) == set(FOLDER_EXPECTED)            # notes.txt too; no hidden folder
    for name, (status, what) in FOLDER_EXPECTED.items():
        row = found[name]
        assert (row["status"], row["label"] if status == "ok" else row["error"]) == (status, what), name
        assert row["source_type"] == "file" and row["source_url"] == str(folder / name)
        if status == "ok":
            check_verdict(row, classifier)
    photo = found["photo.jpg"]
    assert (photo["width"], photo["height"], photo["format"]) == (512, 600, "JPEG")
    assert photo["sha256"] == SHA["photo"] == hashlib.sha256((folder / "photo.jpg").read_bytes()).hexdigest()
    assert found["scans/mri.png"]["sha256"] == SHA["mri"]
    assert list(rows[0]) == list(ROW_FIELDS)
    assert code == 2                                      # broken, fake and empty files
    assert "3 of 8 inputs/images could not be read" in err
    assert "empty: 1, not_an_image: 1, truncated: 1" in err


def test_csv_and_table_formats(capsys, folder, tmp_path):
    out = tmp_path / "rows.csv"
    assert main(["classify", str(folder), "-o", str(out), "-q"]) == 2      # format from suffix
    with open(out, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == list(ROW_FIELDS) and len(rows) == len(FOLDER_EXPECTED)
    mri = next(r for r in rows if r["image_url"].endswith("scans/mri.png"))
    assert mri["label"] == "medical" and mri["pdf_page"] == "" and mri["width"] == "256"
    capsys.readouterr()

    assert main(["classify", str(folder / "photo.jpg"), str(folder / "scans")]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["image", "type", "page", "size", "label", "confidence", "modality", "status",
                                "caption"]
    assert len(lines) == 4 and "512x600" in lines[1] and "non-medical" in lines[1]
    assert "medical" in lines[2] and "mri" in lines[2]
    assert "3 images: 2 medical, 1 non-medical, 0 skipped, 0 unreadable" in err


def test_export_medical_once_per_image(capsys, folder, tmp_path):
    dest = tmp_path / "medical"
    code, rows, _ = classify(capsys, folder, "--export-medical", dest)
    assert code == 2
    assert sorted(p.name for p in dest.iterdir()) == [f"{SHA['mri']}.png"]
    assert (dest / f"{SHA['mri']}.png").read_bytes() == MRI
    found = by_name(rows, folder)
    assert found["scans/mri.png"]["path"] == found["scans/old/mri-copy.png"]["path"] == f"{SHA['mri']}.png"
    assert found["photo.jpg"]["path"] == ""

    p = found["scans/mri.png"]["medical_probability"]
    if p < 1.0:                                           # a stricter floor exports nothing
        strict = tmp_path / "strict"
        classify(capsys, folder / "scans", "--export-medical", strict,
                 "--min-confidence", min(1.0, p + 1e-6))
        assert list(strict.iterdir()) == []


def test_pdf_every_embedded_image(capsys, classifier, pdfs):
    code, rows, _ = classify(capsys, pdfs / "paper.pdf")
    assert code == 0 and len(rows) == 2
    assert [r["pdf_page"] for r in rows] == [1, 2]
    assert {r["source_type"] for r in rows} == {"pdf"}
    assert {r["source_url"] for r in rows} == {str(pdfs / "paper.pdf")}
    assert [(r["width"], r["height"]) for r in rows] == [(512, 600), (256, 256)]
    assert [r["label"] for r in rows] == ["non-medical", "medical"]
    for row in rows:
        check_verdict(row, classifier)
        assert row["image_url"].startswith(f"{pdfs / 'paper.pdf'}#page={row['pdf_page']}")


def test_unreadable_inputs_are_error_rows_and_exit_2(capsys, pdfs, tmp_path):
    missing = tmp_path / "nope.png"
    code, rows, err = classify(capsys, missing, pdfs / "locked.pdf", pdfs / "paper.pdf")
    assert code == 2
    assert [(r["status"], r["error"]) for r in rows[:2]] == [("error", "not_found"),
                                                             ("error", "pdf_encrypted")]
    assert rows[0]["image_url"] == str(missing) and rows[1]["source_type"] == "pdf"
    assert [r["status"] for r in rows[2:]] == ["ok", "ok"]              # the others still reported
    assert f"cannot read {missing}" in err and "could not be read" in err
    assert "not_found: 1, pdf_encrypted: 1" in err


def test_inputs_without_images_still_get_a_row(capsys, server, tmp_path):
    text_only = tmp_path / "text-only.pdf"
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "Only text on this page")
    text_only.write_bytes(doc.tobytes())
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.7\n this is not really a PDF")
    code, rows, _ = classify(capsys, "--allow-private-urls", text_only, f"{server}/empty.html", garbage)
    assert [(r["source_type"], r["status"], r["error"]) for r in rows] == [
        ("pdf", "skipped", "no_images"), ("html", "skipped", "no_images"),
        ("pdf", "error", "pdf_malformed")]
    assert code == 2


def test_page_image_and_pdf_urls(capsys, classifier, server):
    HITS.clear()
    code, rows, err = classify(capsys, "--allow-private-urls", f"{server}/page.html",
                               f"{server}/img/photo.jpg", f"{server}/paper.pdf")
    page = [r for r in rows if r["source_type"] == "html"]
    assert {r["image_url"]: (r["status"], r["label"] or r["error"]) for r in page} == {
        f"{server}/img/photo.jpg": ("ok", "non-medical"),
        f"{server}/img/mri.png": ("ok", "medical"),
        f"{server}/img/missing.png": ("error", "http_404")}
    assert {r["source_url"] for r in page} == {f"{server}/page.html"}
    direct = [r for r in rows if r["source_type"] == "url"]
    assert [(r["image_url"], r["label"]) for r in direct] == [(f"{server}/img/photo.jpg", "non-medical")]
    pdf = [r for r in rows if r["source_type"] == "pdf"]
    assert [(r["pdf_page"], r["label"], r["source_url"]) for r in pdf] == [
        (1, "non-medical", f"{server}/paper.pdf"), (2, "medical", f"{server}/paper.pdf")]
    assert len(rows) == 6 and code == 2 and "http_404: 1" in err
    assert "/other.html" not in HITS and "/img/never.png" not in HITS   # no crawling
    for row in rows:
        if row["status"] == "ok":
            check_verdict(row, classifier)


def test_private_urls_refused_by_default(capsys, server):
    HITS.clear()
    code, rows, err = classify(capsys, f"{server}/img/photo.jpg",
                               "http://169.254.169.254/latest/meta-data/")
    assert code == 2 and HITS == []
    assert [(r["status"], r["error"], r["source_type"]) for r in rows] == [
        ("error", "private_address", "url")] * 2
    assert "--allow-private-urls" in err


def test_limits(capsys, folder, server):
    code, rows, err = classify(capsys, folder, "--max-images", "2")
    assert len(rows) == 2 and "stopped at --max-images 2" in err
    code, rows, _ = classify(capsys, "--allow-private-urls", "--max-bytes", "10KB",
                             f"{server}/img/photo.jpg")
    assert (code, rows[0]["error"]) == (2, "too_large")
    code, rows, _ = classify(capsys, "--max-bytes", "10KB", folder / "photo.jpg")
    assert (code, rows[0]["error"]) == (2, "too_large")
    code, rows, _ = classify(capsys, "--min-size", "300", folder / "scans/mri.png")
    assert (code, rows[0]["status"], rows[0]["error"]) == (0, "skipped", "too_small")


def test_batched_inference(capsys, classifier, folder, monkeypatch):
    calls = []
    real = classifier.predict_all
    monkeypatch.setattr(classifier, "predict_all",
                        lambda batch, threads, refine=None: calls.append(len(batch)) or real(batch, threads, refine))
    monkeypatch.setattr(labelling, "DECODE_THREADS", 1)    # one thread: one model call per batch
    code, rows, _ = classify(capsys, folder, "--batch-size", "2")
    # sorted: [broken, drawing] [empty, fake] [icon (too small), notes (unsupported)] [photo, mri]
    # [mri-copy]
    assert len(rows) == 9 and calls == [2, 1]
    calls.clear()
    classify(capsys, folder / "photo.jpg", folder / "scans")
    assert calls == [3]                                    # one call for all of them
    calls.clear()
    monkeypatch.setattr(labelling, "DECODE_THREADS", 2)    # two: each decodes and labels its share
    classify(capsys, folder / "photo.jpg", folder / "scans")
    assert sorted(calls) == [1, 2]


def test_model_load_failure_is_a_clear_message(capsys, tmp_path, folder):
    code = main(["classify", "--model", str(tmp_path / "no-model"), str(folder / "photo.jpg")])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert "cannot load the model" in err and "model.json is missing" in err
    assert "Traceback" not in err


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["classify", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--format", "--output", "--export-medical", "--min-confidence", "--batch-size",
                   "--model", "--min-size", "--allow-private-urls", "--timeout", "--max-bytes",
                   "--quiet", "--max-images"):
        assert option in text
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(cmd in text for cmd in ("classify", "ui", "demo"))
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert capsys.readouterr().out.startswith("usage: medcrawl demo [-h] [--out OUT]")


def test_console_script_subprocess(folder, tmp_path):
    script = Path(sys.executable).with_name("medcrawl")
    assert script.exists(), "run `pip install -e . --no-deps` to install the console script"
    proc = subprocess.run([str(script), "classify", str(folder / "photo.jpg"),
                           str(folder / "scans" / "mri.png"), "--format", "csv"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(proc.stdout.splitlines()))
    assert [r["label"] for r in rows] == ["non-medical", "medical"]
    assert "2 images: 1 medical, 1 non-medical" in proc.stderr
    assert "XNNPACK" not in proc.stderr and "INFO" not in proc.stderr         # LiteRT's notice kept off
    proc = subprocess.run([sys.executable, "-m", "medcrawl", "classify", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--export-medical" in proc.stdout


def test_rows_match_the_crawl_feed_format():
    """The CLI writes CSV / JSON lines byte-for-byte like the crawl's Scrapy feed exporters."""
    import io
    from scrapy.exporters import CsvItemExporter, JsonLinesItemExporter
    from medcrawl.oneoff.writers import FeedWriter
    from medcrawl.items import ImageItem
    from medcrawl.settings import FEED_EXPORT_ENCODING, FEED_EXPORT_FIELDS
    items = [ImageItem(image_url='http://x/é,"q".png', source_type="pdf", pdf_page=3, width=10,
                       medical_probability=0.123456, confidence=0.876544, label="non-medical",
                       status="ok", body=b"never exported"),
             ImageItem(image_url="a.png", error="multi\nline", status="error")]
    for fmt, exporter_cls in (("csv", CsvItemExporter), ("jsonl", JsonLinesItemExporter)):
        scrapy_out, ours = io.BytesIO(), io.BytesIO()
        exporter = exporter_cls(scrapy_out, fields_to_export=FEED_EXPORT_FIELDS,
                                encoding=FEED_EXPORT_ENCODING)
        exporter.start_exporting()
        writer = FeedWriter(ours, fmt)
        for item in items:
            exporter.export_item(item.row())
            writer.write(item)
        exporter.finish_exporting()
        writer.close()
        assert ours.getvalue() == scrapy_out.getvalue(), fmt
