# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# One worker per chunk, all in parallel. Each reports the incidents whose first line it sees,
# by the line number printed at the start of that line. Neighbouring chunks share a few lines,
# so an incident there comes back twice with the same number: keep one per line number.
from collections import Counter

KINDS = ["oom", "db_timeout", "auth_failure", "disk_full", "segfault"]
SCHEMA = {
    "type": "object",
    "properties": {
        "incidents": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "line": {"type": "integer"},
                    "kind": {"type": "string", "enum": KINDS},
                    "summary": {"type": "string"},
                },
                "required": ["line", "kind", "summary"],
            },
        }
    },
    "required": ["incidents"],
}
INSTRUCTION = """Find the incidents in these log lines. Each line starts with its line number and '| '.
An incident is a record at level ERROR, CRITICAL or FATAL of one of these kinds:
oom (java.lang.OutOfMemoryError), db_timeout (database connection timeout),
auth_failure (authentication failed), disk_full (No space left on device),
segfault (Segmentation fault). Other errors, such as declined cards, are not incidents.
For each incident give the line number of its first line (the record with the level),
its kind, and a one-line summary. Stack-trace lines whose first record is not in the text
are not incidents: skip them. With no incidents, answer {"incidents": []}."""


def audit(chunk):
    return tool.worker(chunk, INSTRUCTION, schema=SCHEMA, max_tokens=1000)


reports = pmap(audit, data)
failed = [i for i, r in enumerate(reports) if isinstance(r, Failure)]
if failed:
    print("retrying", len(failed), "failed chunks, e.g.", reports[failed[0]])
    again = pmap(audit, [data[i] for i in failed])
    for i, r in zip(failed, again, strict=True):
        reports[i] = r
    failed = [i for i, r in enumerate(reports) if isinstance(r, Failure)]

by_line = {}
raw = 0
for report in reports:
    if isinstance(report, Failure):
        continue
    for incident in report["incidents"]:
        raw += 1
        by_line.setdefault(incident["line"], incident)
incidents = [by_line[line] for line in sorted(by_line)]
by_kind = dict(Counter(i["kind"] for i in incidents))
print(f"{len(data)} chunks ({len(failed)} failed): {raw} reports, {len(incidents)} incidents once de-duplicated")
print("by kind:", by_kind)
for incident in incidents[:5]:
    print("   ", incident["line"], incident["kind"], incident["summary"][:70])
answer = {
    "total": len(incidents),
    "by_kind": by_kind,
    "incidents": incidents,
    "chunks": len(data),
    "failed_chunks": failed,
    "duplicates_removed": raw - len(incidents),
}
