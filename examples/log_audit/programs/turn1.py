# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# First look: how many chunks, what a line looks like, which levels occur.
import re
from collections import Counter

print(len(data), "chunks")
lines = data[0].splitlines()
print("chunk 0 holds", len(lines), "lines; the first three:")
for line in lines[:3]:
    print("   ", line[:110])
print("chunk 1 starts at line", data[1][:6].strip(), "and chunk 0 ends at line", lines[-1][:6].strip())
levels = Counter()
for chunk in data:
    levels.update(re.findall(r"Z (DEBUG|INFO|WARN|ERROR|CRITICAL|FATAL) \[", chunk))
print("records by level (lines two chunks share counted twice):", dict(levels))
