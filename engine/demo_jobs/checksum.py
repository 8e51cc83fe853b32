"""Demo job: the SHA-256 checksum of a file, written like `sha256sum` does."""

import hashlib
import sys
from pathlib import Path

source, output_dir = Path(sys.argv[1]), Path(sys.argv[2])
digest = hashlib.sha256()
with open(source, "rb") as handle:
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
line = f"{digest.hexdigest()}  {source.name}\n"
(output_dir / "checksum.sha256").write_text(line)
print(line, end="")
