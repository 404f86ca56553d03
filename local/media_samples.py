"""Files the local stack's simulator can hold as if a lead had sent them, and a brochure an agent uploads.

Made in code (no binary files in the repository): a small valid JPEG (a grey 8x8 picture) and a one-page PDF.
`POST /_local/graph/media?sample=photo` puts one in the simulator and answers its media id, as Meta would
name it in the webhook of a lead's message.
"""

from __future__ import annotations

import hashlib
import zlib

# A baseline JPEG of 8x8 grey pixels: SOI, JFIF APP0, one quantisation table, SOF0, one Huffman table pair
# for a flat DC-only image, SOS, the scan, EOI. Viewers open it; the magic bytes are what the checks read.
PHOTO = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000"
    "ffdb004300" + "01" * 64 + "ffc0000b080008000801011100"
    "ffc4001f0000010501010101010100000000000000000102030405060708090a0b"
    "ffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"
    "ffda0008010100003f00" + "d2cf20" + "ffd9"
)


def _pdf() -> bytes:
    text = b"BT /F1 24 Tf 72 720 Td (Gefen project - brochure) Tj ET"
    stream = zlib.compress(text)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" /Filter /FlateDecode >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


BROCHURE = _pdf()
SAMPLES = {"photo": (PHOTO, "image/jpeg"), "brochure": (BROCHURE, "application/pdf")}


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
