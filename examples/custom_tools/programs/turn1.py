# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# Look at the log and try the database tool on one customer before fanning out.
import re

print(len(data), "chunks;", sum(len(c.splitlines()) for c in data), "lines")
print("sample:", data[0].splitlines()[0])
first_id = re.search(r"customer=(\d+)", data[0]).group(1)
print("lookup_customer:", tool.lookup_customer(first_id))
