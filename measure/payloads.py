"""Log files to upload, generated once per size before any timing starts."""

from __future__ import annotations

import gzip as gzip_module
from dataclasses import dataclass

from logctl.generate import generate_lines

DEFAULT_SIZES = (100, 500, 1000)
LARGE_SIZES = (10_000, 100_000)
PAYLOAD_SEED = 6650


class SizeSpecError(ValueError):
    """A list of file sizes could not be parsed."""


@dataclass(frozen=True)
class Payload:
    lines: int
    body: bytes
    gzip: bool

    @property
    def label(self) -> str:
        return f"{self.lines} lines" + (" gz" if self.gzip else "")

    @property
    def suffix(self) -> str:
        return ".ndjson.gz" if self.gzip else ".ndjson"


def parse_sizes(spec: str, *, large: bool = False) -> tuple[int, ...]:
    """'100,500,1000' -> (100, 500, 1000); `large` appends the large-file sizes."""
    sizes: list[int] = []
    for part in spec.split(","):
        part = part.strip().replace("_", "")
        if not part:
            continue
        if not part.isdigit() or int(part) <= 0:
            raise SizeSpecError(f"file size {part!r} is not a positive number of lines")
        sizes.append(int(part))
    if large:
        sizes.extend(LARGE_SIZES)
    if not sizes:
        raise SizeSpecError(f"no file sizes in {spec!r}")
    return tuple(dict.fromkeys(sizes))


def build_payload(lines: int, *, gzip: bool = False, error_rate: float = 0.05,
                  seed: int = PAYLOAD_SEED) -> Payload:
    body = b"".join(generate_lines(lines, error_rate=error_rate, seed=seed + lines))
    if gzip:
        body = gzip_module.compress(body, compresslevel=6, mtime=0)
    return Payload(lines=lines, body=body, gzip=gzip)


def build_payloads(sizes: tuple[int, ...], *, gzip: bool = False) -> dict[int, Payload]:
    return {lines: build_payload(lines, gzip=gzip) for lines in sizes}
