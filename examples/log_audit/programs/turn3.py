# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# Cross-check before answering: every record at an incident level, once per line number.
# The ones the workers did not report should all be errors of other kinds.
import re

records = {}
for chunk in data:
    for m in re.finditer(r"^\s*(\d+)\| \S+ (?:ERROR|CRITICAL|FATAL) \[([\w-]+)\] (.*)$", chunk, re.MULTILINE):
        records[int(m.group(1))] = m.group(2) + ": " + m.group(3)
unreported = sorted(set(records) - set(by_line))
print(len(records), "records at ERROR/CRITICAL/FATAL;", len(unreported), "not reported as incidents")
print("their services:", sorted({records[n].split(":")[0] for n in unreported}))
done(answer)
