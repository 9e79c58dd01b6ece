"""DICOM and NIfTI files in a crawl, `medcrawl classify` and the web page; PDFs linked from PDFs;
no patient data in any output. Real files (tests/dicom_files.py), a real site on 127.0.0.1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pymupdf
import pytest

from medcrawl.publish import FOLDER_FILES
from tests.support.crawls import scrapy_crawl
from tests.support.dicom_files import PATIENT, bad_files, good_files, nifti_volume, shipped
from tests.support.oneoff_assets import make_pdf, mri_png, photo_jpeg
from tests.support.servers import ServerState

# Every patient value, and its parts (a name's family and given names), must appear nowhere.
SECRETS = sorted({part for value in PATIENT.values() for part in re.split(r"\^", value)} |
                 set(PATIENT.values()))


def build_site(root: Path, base: str) -> dict[str, tuple[str, str]]:
    """The case site; returns (image_url, source_url) -> expected (status, error or format)."""
    cases = root / "cases"
    good = good_files(cases)
    good_files(root / "private", PATIENT)          # ct_rescale.dcm there holds the patient values
    bad = bad_files(cases)
    (root / "volumes").mkdir()
    (root / "volumes" / "brain.nii.gz").write_bytes(nifti_volume().read_bytes())
    (root / "download").write_bytes(good["us_rgb.dcm"].read_bytes())   # no extension
    (root / "render").write_bytes(good["mr_multiframe.dcm"].read_bytes())   # behind an <img>
    (root / "figs").mkdir()
    (root / "figs" / "fig1.png").write_bytes(mri_png())
    (root / "papers").mkdir()
    (root / "papers" / "b.pdf").write_bytes(make_pdf([photo_jpeg()]))
    (root / "papers" / "a.pdf").write_bytes(pdf_with_links(
        mri_png(), [f"{base}/papers/b.pdf", f"{base}/figs/fig1.png", f"{base}/cases/fundus_jpeg.dcm"]))
    links = ["cases/ct_rescale.dcm", "cases/mr_multiframe.dcm", "cases/ct_j2k.dcm",
             "cases/mr_rle.dcm", "cases/xray_mono1.dcm", "private/ct_rescale.dcm",
             "volumes/brain.nii.gz", "download", "cases/truncated.dcm", "cases/rtstruct.dcm",
             "cases/DICOMDIR", "cases/no_pixels.dcm", "papers/a.pdf"]
    (root / "index.html").write_text("<html><body><img src='render'>" + "".join(
        f'<a href="{link}">{link}</a>' for link in links) + "</body></html>")
    page = f"{base}/"
    expected = {(f"{base}/{name}#frame=1", page): ("ok", "dicom") for name in (
        "cases/ct_rescale.dcm", "cases/ct_j2k.dcm", "cases/xray_mono1.dcm",
        "private/ct_rescale.dcm", "download")}
    expected[(f"{base}/cases/mr_multiframe.dcm#frame=3", page)] = ("ok", "dicom")
    expected[(f"{base}/cases/mr_rle.dcm#frame=2", page)] = ("ok", "dicom")
    expected[(f"{base}/render", page)] = ("ok", "dicom")      # the store renders its middle frame
    for plane in ("axial", "coronal", "sagittal"):
        expected[(f"{base}/volumes/brain.nii.gz#frame={plane}", page)] = ("ok", "nifti")
    for name in ("truncated.dcm", "rtstruct.dcm", "DICOMDIR", "no_pixels.dcm"):
        expected[(f"{base}/cases/{name}", page)] = ("error", bad[name][1])
    a_pdf, b_pdf = f"{base}/papers/a.pdf", f"{base}/papers/b.pdf"
    expected[(f"{a_pdf}#page=1", a_pdf)] = ("ok", "PNG")
    expected[(f"{b_pdf}#page=1", b_pdf)] = ("ok", "JPEG")
    expected[(f"{base}/figs/fig1.png", a_pdf)] = ("ok", "PNG")
    expected[(f"{base}/cases/fundus_jpeg.dcm#frame=1", a_pdf)] = ("ok", "dicom")
    return expected


def pdf_with_links(image: bytes, urls: list[str]) -> bytes:
    """A one-page PDF with an embedded image and a link annotation per URL."""
    doc = pymupdf.open(stream=make_pdf([image]), filetype="pdf")
    for i, url in enumerate(urls):
        doc[0].insert_link({"kind": pymupdf.LINK_URI, "uri": url,
                            "from": pymupdf.Rect(72, 620 + 30 * i, 400, 640 + 30 * i)})
    return doc.tobytes()


def key(row: dict) -> tuple[str, str]:
    """A row's identity with NIfTI slice indexes and PDF xrefs left out (they vary by file)."""
    url = re.sub(r"#frame=(axial|coronal|sagittal):\d+", r"#frame=\1", row["image_url"])
    return re.sub(r"#page=(\d+)&xref=\d+", r"#page=\1", url), row["source_url"]


def everything_written(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def assert_no_patient_data(blob: bytes, where: str) -> None:
    for secret in SECRETS:
        assert secret.encode() not in blob, f"{secret!r} found in {where}"


@pytest.fixture(scope="module")
def site(tmp_path_factory, serve):
    root = tmp_path_factory.mktemp("cases-site")
    state = ServerState({"/download": "application/dicom", "/render": "application/dicom"})
    with serve(root, state) as (base, state):
        yield base, root, build_site(root, base), state


def crawl(workdir: Path, start: str, *args: str):
    proc = scrapy_crawl(workdir, "-a", f"start_urls={start}", "-O", "rows.jsonl", "-O", "rows.csv",
                        "-s", "RETRY_TIMES=0", "-s", "AUTOTHROTTLE_START_DELAY=0.1",
                        "-s", "MEDCRAWL_BATCH_MAX_WAIT=0.5", "-s", "LOG_LEVEL=DEBUG",
                        "-s", "LOG_FILE=crawl.log", *args)
    log = (workdir / "crawl.log").read_text()
    assert proc.returncode == 0, log[-3000:] + proc.stderr[-2000:]
    rows = [json.loads(line) for line in (workdir / "rows.jsonl").read_text().splitlines()]
    return proc, rows


@pytest.fixture(scope="module")
def crawled(site, tmp_path_factory):
    base, _, expected, _ = site
    workdir = tmp_path_factory.mktemp("crawl")
    proc, rows = crawl(workdir, f"{base}/", "-s", "MEDCRAWL_DATASET_DIR=dataset",
                       "-s", "MEDCRAWL_DATASET_MIN_CONFIDENCE=0.5")
    return workdir, proc, rows, expected


@pytest.mark.slow
def test_a_labelled_row_for_every_image_of_every_file(crawled):
    workdir, _, rows, expected = crawled
    got = {key(r): r for r in rows}
    assert set(got) == set(expected), (set(expected) - set(got), set(got) - set(expected))
    for k, (status, what) in expected.items():
        row = got[k]
        assert row["status"] == status, row
        if status == "ok":
            assert row["format"] == what and row["label"] in ("medical", "non-medical"), row
            assert row["sha256"] and row["path"].endswith(".png" if what != "JPEG" else ".jpg")
        else:
            assert row["error"] == what, row
    assert len(rows) == len(expected)


@pytest.mark.slow
def test_dicom_rows_carry_frame_modality_and_size(crawled, site):
    base = site[0]
    rows = {key(r): r for r in crawled[2]}
    page = f"{base}/"
    ct = rows[(f"{base}/cases/ct_rescale.dcm#frame=1", page)]
    assert (ct["frame"], ct["modality"], ct["width"], ct["height"]) == ("1", "ct", 512, 512)
    mr = rows[(f"{base}/cases/mr_multiframe.dcm#frame=3", page)]
    assert (mr["frame"], mr["modality"], mr["width"], mr["height"]) == ("3", "mri", 181, 217)
    assert rows[(f"{base}/cases/xray_mono1.dcm#frame=1", page)]["modality"] == "xray"
    behind_img = rows[(f"{base}/render", page)]
    assert (behind_img["frame"], behind_img["modality"], behind_img["width"]) == ("3", "mri", 181)
    fundus = rows[(f"{base}/cases/fundus_jpeg.dcm#frame=1", f"{base}/papers/a.pdf")]
    assert (fundus["source_type"], fundus["pdf_page"], fundus["modality"]) == ("pdf", 1, "fundus")
    axial = [r for k, r in rows.items() if k[0].endswith("#frame=axial")][0]
    assert re.fullmatch(r"axial:\d+", axial["frame"]) and axial["format"] == "nifti"
    assert (axial["label"], axial["label_source"], axial["confidence"]) == ("medical", "nifti", 1.0)
    assert (ct["label"], ct["label_source"]) == ("medical", "dicom")


@pytest.mark.slow
def test_pdf_links_followed_with_the_linking_pdf_as_source(crawled, site):
    base = site[0]
    rows = {key(r): r for r in crawled[2]}
    fig = rows[(f"{base}/figs/fig1.png", f"{base}/papers/a.pdf")]
    assert (fig["source_type"], fig["pdf_page"], fig["status"]) == ("pdf", 1, "ok")
    assert rows[(f"{base}/papers/b.pdf#page=1", f"{base}/papers/b.pdf")]["status"] == "ok"


@pytest.mark.slow
def test_store_and_dataset_hold_rendered_pngs_only(crawled):
    workdir = crawled[0]
    stored = [p for p in (workdir / "images").rglob("*") if p.is_file()]
    assert stored and {p.suffix for p in stored} <= {".png", ".jpg"}
    dataset = [p for p in (workdir / "dataset").rglob("*") if p.is_file() and p.name not in FOLDER_FILES]
    assert dataset and {p.suffix for p in dataset} <= {".png", ".jpg"}
    assert not any(p.read_bytes()[128:132] == b"DICM" for p in stored + dataset)


@pytest.mark.slow
def test_no_patient_data_in_any_crawl_output(crawled, site):
    workdir, proc, _, _ = crawled
    source = (site[1] / "private" / "ct_rescale.dcm").read_bytes()
    assert all(secret.encode() in source for secret in SECRETS)    # the crawled file has them
    log = (workdir / "crawl.log").read_text()
    assert "DEBUG" in log and "private/ct_rescale.dcm" in log     # the log did see the file
    assert_no_patient_data(everything_written(workdir), "the crawl's files")
    assert_no_patient_data((proc.stdout + proc.stderr).encode(), "the crawl's console")


@pytest.mark.slow
def test_keep_original_stores_the_files_as_they_came(site, tmp_path):
    base, root, _, state = site
    _, rows = crawl(tmp_path, f"{base}/cases/mr_multiframe.dcm", "-a", "follow=false",
                    "-s", "MEDCRAWL_DICOM_KEEP_ORIGINAL=True", "-s", "MEDCRAWL_DICOM_FRAMES=all")
    assert [r["frame"] for r in sorted(rows, key=lambda r: r["frame"])] == ["1", "2", "3", "4", "5"]
    originals = list((tmp_path / "images").rglob("*.dcm"))
    assert [p.read_bytes() for p in originals] == [(root / "cases" / "mr_multiframe.dcm").read_bytes()]


@pytest.mark.slow
def test_pdf_links_obey_depth(site, tmp_path):
    base, _, _, state = site
    before = len(state.requests)
    _, rows = crawl(tmp_path, f"{base}/", "-a", "max_depth=0")
    asked = [path for _, path in state.requests[before:]]
    assert "/papers/a.pdf" in asked and "/figs/fig1.png" in asked    # a page's PDF; images anywhere
    assert "/papers/b.pdf" not in asked                             # a PDF's PDF: one hop too deep
    assert any(r["image_url"].endswith("/figs/fig1.png") for r in rows)


def test_classify_command_reads_dicom_and_nifti_without_leaking(capsys, site):
    from medcrawl.oneoff.cli import main

    _, root, _, _ = site
    tiny = shipped("rtdose_1frame.dcm")                  # a real 10x10 dose grid
    code = main(["classify", "--format", "jsonl", str(root / "private"), str(root / "volumes"),
                 str(root / "cases" / "truncated.dcm"), str(root / "index.html"), str(tiny)])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    by_frame = {(Path(r["source_url"]).name, r["frame"]): r for r in rows}
    assert by_frame[("ct_rescale.dcm", "1")]["modality"] == "ct"
    assert sum(1 for r in rows if r["format"] == "nifti" and r["status"] == "ok") == 3
    assert by_frame[("truncated.dcm", "")]["error"] == "dicom_truncated"
    assert by_frame[("index.html", "")]["error"] == "unsupported_type"
    small = by_frame[("rtdose_1frame.dcm", "1")]
    assert (small["status"], small["error"], small["width"], small["height"], small["format"]) == (
        "skipped", "too_small", 10, 10, "dicom")
    assert code == 2 and "1 file of unsupported type" in err
    assert_no_patient_data((out + err).encode(), "the classify output")


def test_web_page_upload_of_a_dicom(site, classifier, tmp_path):
    """The page's upload handler runs ClassifyService with the upload's own name (as here)."""
    from medcrawl.oneoff.ui import ClassifyService, UiSettings

    _, root, _, _ = site
    upload = tmp_path / "upload" / "0123abcd"           # Gradio's temporary file name
    upload.parent.mkdir()
    upload.write_bytes((root / "private" / "ct_rescale.dcm").read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    result = ClassifyService(classifier, UiSettings(), work).run([str(upload)],
                                                                 {str(upload): "scan.dcm"})
    table = result.table
    assert len(result.gallery) == 1 and list(table["image_url"]) == ["scan.dcm#frame=1"]
    assert list(table["format"]) == ["dicom"] and list(table["modality"]) == ["ct"]
    shown = table.to_csv().encode() + result.message.encode() + everything_written(work)
    assert_no_patient_data(shown, "the web page's rows and downloads")


def test_dicom_images_with_an_imaging_modality_are_medical_by_format(classifier, tmp_path):
    """A DICOM image whose Modality tag names an imaging modality is medical whatever the model
    says (even a photograph filed as "CT"): the row says so in label_source and keeps the model's
    probability; a DICOM whose tag names no imaging modality is left to the model."""
    import io

    import numpy as np
    from PIL import Image

    from tests.support.dicom_files import ct_with_rescale, new_dataset, write
    from medcrawl.extract.medical import medical_rows
    from medcrawl.model.labelling import label_items

    photo = new_dataset("CT")
    photo.set_pixel_data(np.asarray(Image.open(io.BytesIO(photo_jpeg())).convert("RGB")), "RGB", 8)
    untagged = new_dataset("OT")
    untagged.set_pixel_data(np.asarray(Image.open(io.BytesIO(photo_jpeg())).convert("RGB")), "RGB", 8)
    files = {"ct.dcm": ct_with_rescale(), "photo.dcm": photo, "other.dcm": untagged}
    rows = [row for name, ds in files.items()
            for row in medical_rows("dicom", write(ds, tmp_path / name).read_bytes(), name)]
    assert [r.modality for r in rows] == ["ct", "ct", ""]       # two tags say CT, "OT" names none
    ct, photo_row, other = label_items(classifier, rows)
    assert (ct.label, ct.label_source, ct.modality, ct.modality_confidence) == ("medical", "dicom", "ct", 1.0)
    assert (photo_row.label, photo_row.label_source, photo_row.confidence) == ("medical", "dicom", 1.0)
    assert photo_row.medical_probability < 0.5                   # the model's view, kept
    assert (other.label, other.label_source, other.modality) == ("non-medical", "model", "")
