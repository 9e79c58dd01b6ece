"""extract_pdf_images / looks_like_pdf on PDFs built with PyMuPDF at test time."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from medcrawl.extract.pdf import PdfError, PdfImage, extract_pdf_images, looks_like_pdf
from tests.support.site_fixture import encode, encrypted_pdf, mri_png16, pdf_with, photo, sample


def decode(image: PdfImage) -> Image.Image:
    img = Image.open(io.BytesIO(image.data))
    img.load()
    return img


def test_jpeg_kept_as_original_bytes():
    grace = sample("grace_hopper.jpg")
    data, xrefs = pdf_with([[grace]])
    [image] = extract_pdf_images(data)
    assert image.data == grace
    assert (image.ext, image.page, image.xref, image.width, image.height) == ("jpg", 1, xrefs[0], 512, 600)


def test_png_with_alpha_gets_its_soft_mask_applied():
    alpha = np.tile(np.linspace(0, 255, 100, dtype=np.uint8), (80, 1))
    rgb = np.full((80, 100, 3), (200, 40, 10), np.uint8)
    png = encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG")
    [image] = extract_pdf_images(pdf_with([[png]])[0])
    img = decode(image)
    assert (image.ext, img.format, img.mode, img.size) == ("png", "PNG", "RGBA", (100, 80))
    assert img.getpixel((0, 40))[3] == 0 and img.getpixel((99, 40))[3] == 255
    r, g, b, a = img.getpixel((60, 40))
    assert 100 < a < 200 and abs(r - 200) <= 4 and abs(g - 40) <= 4 and abs(b - 10) <= 4


def test_cmyk_converted_to_rgb_without_inverting():
    cyan = encode(Image.new("CMYK", (90, 70), (255, 0, 0, 0)), "JPEG")
    [image] = extract_pdf_images(pdf_with([[cyan]])[0])
    img = decode(image)
    assert (image.ext, img.mode, img.size) == ("png", "RGB", (90, 70))
    r, g, b = img.getpixel((45, 35))
    assert r < 80 and g > 120 and b > 180          # cyan, not its inverse (red)


def test_grayscale_stays_gray_and_lossless():
    gray = photo(110, 70, 3).convert("L")
    [image] = extract_pdf_images(pdf_with([[encode(gray, "PNG")]])[0])
    img = decode(image)
    assert img.mode == "L" and np.array_equal(np.asarray(img), np.asarray(gray))


def test_sixteen_bit_image_is_extracted():
    [image] = extract_pdf_images(pdf_with([[mri_png16()]])[0])
    assert (image.width, image.height) == (256, 256) and decode(image).size == (256, 256)


def test_reused_image_extracted_once_on_its_first_page():
    a, b = encode(photo(60, 60, 1), "JPEG"), encode(photo(70, 50, 2), "JPEG")
    data, xrefs = pdf_with([[], [a], [b, 0], [0], [0]])
    images = extract_pdf_images(data)
    assert [(i.page, i.xref) for i in images] == [(2, xrefs[0]), (3, xrefs[1])]


def test_max_images_limits_the_result():
    pages = [[encode(photo(40, 40, seed), "JPEG")] for seed in range(5)]
    assert [i.page for i in extract_pdf_images(pdf_with(pages)[0], max_images=2)] == [1, 2]


def test_pdf_without_images():
    assert extract_pdf_images(pdf_with([[], []])[0]) == []


def test_encrypted_pdf_is_reported():
    data = encrypted_pdf(pdf_with([[encode(photo(40, 40, 1), "JPEG")]])[0])
    with pytest.raises(PdfError) as info:
        extract_pdf_images(data)
    assert info.value.reason == "pdf_encrypted"


@pytest.mark.parametrize("data", [
    b"", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage\n%%EOF\n", b"not a pdf at all",
    sample("grace_hopper.jpg"),
])
def test_malformed_input_is_reported(data):
    with pytest.raises(PdfError) as info:
        extract_pdf_images(data)
    assert info.value.reason == "pdf_malformed"


def test_truncated_pdf_still_yields_what_survives():
    first = encode(photo(50, 50, 0), "JPEG")
    data = pdf_with([[first]] + [[encode(photo(50, 50, seed), "JPEG")] for seed in range(1, 4)])[0]
    images = extract_pdf_images(data[: int(len(data) * 0.4)])     # MuPDF repairs the xref table
    assert images[0].page == 1 and images[0].data == first


@pytest.mark.parametrize("data, content_type, expected", [
    (b"%PDF-1.7\n...", "", True),
    (b"\n\n  %PDF-1.4 preceded by junk", "application/octet-stream", True),
    (b"<html>not</html>", "application/pdf", True),
    (b"<html>not</html>", "Application/PDF; charset=binary", True),
    (b"<html>not</html>", "text/html", False),
    (b"\xff\xd8\xff\xe0", "image/jpeg", False),
])
def test_looks_like_pdf(data, content_type, expected):
    assert looks_like_pdf(data, content_type) is expected
