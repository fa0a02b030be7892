# ruff: noqa: F821  (data, pmap and done are the sandbox's builtins)
# A planner-style program: count ERROR lines per chunk in parallel, then total them.
import re

pattern = re.compile(r"\bERROR\b")

def count(chunk):
    return len(pattern.findall(chunk))

per_chunk = pmap(count, data)
print(f"{len(data)} chunks, errors per chunk: {per_chunk}")
done({"errors": sum(per_chunk)})
