"""Demo job: works for a few seconds, printing progress, and fails one time in four (exit 3)."""

import random
import sys
import time

seconds = float(sys.argv[1])
steps = 5
for step in range(1, steps + 1):
    time.sleep(seconds / steps)
    print(f"step {step}/{steps}", flush=True)
if random.random() < 0.25:
    print("the flaky step failed", file=sys.stderr)
    sys.exit(3)
print("done")
