"""Pictures as plain RGB pixels: QEMU's PPM screendump, noVNC's canvas, and the PNG artifacts.

No imaging library: the test compares what the browser drew with what QEMU shows pixel by
pixel, and a PNG writer is a few lines of zlib.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    rgb: bytes  # width * height * 3 bytes, row by row

    @classmethod
    def from_ppm(cls, data: bytes) -> Picture:
        """A binary PPM (P6, maxval 255) as QEMU's ``screendump`` writes it."""
        magic, size, maxval, pixels = data.split(b"\n", 3)
        width, height = (int(n) for n in size.split())
        if magic != b"P6" or maxval != b"255" or len(pixels) != width * height * 3:
            raise ValueError(f"not an 8-bit P6 picture of {width}x{height}")
        return cls(width, height, pixels)

    @classmethod
    def from_rgba(cls, width: int, height: int, rgba: bytes) -> Picture:
        """Canvas pixels (``getImageData``: RGBA), dropping the alpha that noVNC keeps opaque."""
        if len(rgba) != width * height * 4:
            raise ValueError(f"{len(rgba)} bytes are not {width}x{height} RGBA pixels")
        rgb = bytearray(width * height * 3)
        for channel in range(3):
            rgb[channel::3] = rgba[channel::4]
        return cls(width, height, bytes(rgb))

    def pixels(self) -> list[bytes]:
        return [self.rgb[i : i + 3] for i in range(0, len(self.rgb), 3)]

    def colours(self) -> Counter[bytes]:
        return Counter(self.pixels())

    def background(self) -> bytes:
        return self.colours().most_common(1)[0][0]

    def ink_share(self) -> float:
        """The share of pixels that are not the background colour (text, on a console)."""
        return 1 - self.colours().most_common(1)[0][1] / (self.width * self.height)

    def ink_rows(self) -> list[int]:
        """The rows holding at least one pixel that is not the background colour."""
        background = self.background()
        stride = self.width * 3
        return [
            y
            for y in range(self.height)
            if any(
                self.rgb[x : x + 3] != background for x in range(y * stride, (y + 1) * stride, 3)
            )
        ]

    def text_lines(self) -> int:
        """How many bands of ink rows, separated by background rows, look like text.

        A band of one or two rows is a text cursor's underline, not a line of text.
        """
        bands: list[list[int]] = []
        for y in self.ink_rows():
            if bands and bands[-1][-1] == y - 1:
                bands[-1].append(y)
            else:
                bands.append([y])
        return sum(1 for band in bands if len(band) > 2)

    def ink_agreement(self, other: Picture) -> float:
        """Of the pixels that are ink in either picture, the share that are equal in both.

        Counted over ink rather than over all pixels, since a blank picture agrees with a
        screen of text on nearly every pixel. 0 when sizes or backgrounds differ.
        """
        if (self.width, self.height) != (other.width, other.height):
            return 0.0
        background = self.background()
        if other.background() != background:
            return 0.0
        inked = [
            a == b
            for a, b in zip(self.pixels(), other.pixels(), strict=True)
            if a != background or b != background
        ]
        return sum(inked) / len(inked) if inked else 1.0

    def write_png(self, path: Path) -> Path:
        stride = self.width * 3
        raw = b"".join(b"\0" + self.rgb[y * stride : (y + 1) * stride] for y in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b"")
        )
        return path


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
