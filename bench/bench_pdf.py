"""PDF image extraction: embedded images/s of medcrawl.extract.pdf.extract_pdf_images on generated PDFs.

Each generated PDF holds 50 images (JPEG photos kept as DCT streams, PNG graphics stored by
MuPDF as Flate streams), five to a page. Baseline: PyMuPDF's own ``Document.extract_image``
for every image xref, the shortest way to get the bytes out.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench import common
from bench.common import Figure

PER_PDF, PER_PAGE = 50, 5
TARGET_RATE = 150.0


def make_pdf(images: list[bytes]) -> bytes:
    """A PDF with the images placed PER_PAGE to a page."""
    import pymupdf
    doc = pymupdf.open()
    for start in range(0, len(images), PER_PAGE):
        page = doc.new_page(width=595, height=842)
        for k, data in enumerate(images[start:start + PER_PAGE]):
            page.insert_image(pymupdf.Rect(40, 40 + k * 155, 555, 185 + k * 155), stream=data)
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data


def write_pdfs(count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` generated PDFs of PER_PDF images each (cached between runs)."""
    folder, done = common.cached_dir("pdfs", {"count": count, "size": size, "per": PER_PDF})
    paths = [folder / f"doc{i:03d}.pdf" for i in range(count)]
    if not done:
        folder.mkdir(parents=True, exist_ok=True)
        factory = common.ImageFactory(seed=1)
        for i, path in enumerate(paths):
            path.write_bytes(make_pdf([factory.encode(*size, fmt)
                                       for fmt in common.image_formats(PER_PDF, 0.25)]))
        common.mark_complete(folder)
    return paths


def product(pdfs: list[bytes]) -> int:
    from medcrawl.extract.pdf import extract_pdf_images
    return sum(len(extract_pdf_images(data)) for data in pdfs)


def raw(pdfs: list[bytes]) -> int:
    """PyMuPDF alone: extract_image on every distinct image xref, page by page."""
    import pymupdf
    count = 0
    for data in pdfs:
        with pymupdf.open(stream=data, filetype="pdf") as doc:
            xrefs = {img[0] for page in doc for img in page.get_images(full=True)}
            count += sum(bool(doc.extract_image(x)["image"]) for x in xrefs)
    return count


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--pdfs", type=int, help="generated PDFs of 50 images (default 8; quick 1)")
    args = p.parse_args(argv)
    count = args.pdfs or (1 if args.quick else 8)
    size = (240, 180) if args.quick else (800, 600)
    pdfs = [path.read_bytes() for path in write_pdfs(count, size)]
    expected = count * PER_PDF
    arms = {"product": product, "pymupdf-extract_image": raw}
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for name, fn in arms.items():                         # warm-up
        if fn(pdfs) != expected:
            raise SystemExit(f"{name}: did not find all {expected} images")
    for r in range(common.rounds(args, full=5, quick=1)):
        for name in (list(arms) if r % 2 == 0 else list(arms)[::-1]):
            seconds, _ = common.timed(arms[name], pdfs)
            rates[name].append(expected / seconds)
    figures = [Figure("product rate", common.median(rates["product"]), "images/s", TARGET_RATE),
               Figure("pymupdf-extract_image rate", common.median(rates["pymupdf-extract_image"]),
                      "images/s"),
               Figure("product / pymupdf-extract_image",
                      common.rate_ratio(rates, "product", "pymupdf-extract_image"), "x")]
    return common.report(f"PDF extraction ({count} PDFs x {PER_PDF} images, {size[0]}x{size[1]}, "
                         "25% PNG)", figures, args, {"pdfs": count, "image_size": list(size)})


if __name__ == "__main__":
    sys.exit(main())
