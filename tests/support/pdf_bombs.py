"""PDFs whose one image declares huge dimensions, built at test time (decompression bombs)."""

from __future__ import annotations

import zlib


def pdf_with_image(width: int, height: int, filter_name: str, stream: bytes,
                   colorspace: str = "/DeviceGray", bpc: int = 8) -> bytes:
    """A one-page PDF drawing one image XObject with the given dictionary and stream."""
    image = (f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
             f"/ColorSpace {colorspace} /BitsPerComponent {bpc} /Filter /{filter_name} "
             f"/Length {len(stream)} >>\nstream\n").encode() + stream + b"\nendstream"
    content = b"q 100 0 0 100 0 0 cm /Im0 Do Q"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 100] "
               b"/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>",
               image,
               b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def flate_zeros(size: int) -> bytes:
    """``size`` zero bytes, deflated (about 1 KB per MB)."""
    comp, chunk, out = zlib.compressobj(9), bytes(16 * 1024 * 1024), []
    for _ in range(size // len(chunk)):
        out.append(comp.compress(chunk))
    out.append(comp.compress(bytes(size % len(chunk))))
    out.append(comp.flush())
    return b"".join(out)


def flate_bomb(side: int = 30000) -> bytes:
    return pdf_with_image(side, side, "FlateDecode", flate_zeros(side * side))


def undecodable_bomb(filter_name: str, side: int = 30000) -> bytes:
    """A JBIG2/JPX image claiming side x side pixels (the stream is never meant to be decoded)."""
    return pdf_with_image(side, side, filter_name, b"\x97JB2\r\n\x1a\n" + bytes(2000),
                          bpc=1 if filter_name == "JBIG2Decode" else 8)
