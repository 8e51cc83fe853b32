"""Demo job: count the lines, words and characters of a text file into counts.json."""

import json
import sys
from pathlib import Path

source, output_dir = Path(sys.argv[1]), Path(sys.argv[2])
text = source.read_text(encoding="utf-8", errors="replace")
counts = {"file": source.name, "lines": text.count("\n"), "words": len(text.split()),
          "characters": len(text)}
(output_dir / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")
print(f"{source.name}: {counts['lines']} lines, {counts['words']} words, "
      f"{counts['characters']} characters")
