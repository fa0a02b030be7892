# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# The program a sub-run's planner writes: this sub-run was given one team's document.
(team,) = data
meetings = data[team]
print(team, len(meetings), "meetings;", budget.remaining)

schema = {
    "type": "object",
    "properties": {
        "decisions": {"type": "integer"},
        "open_actions": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["decisions", "open_actions"],
}
found = pmap(
    lambda meeting: tool.worker(
        meeting,
        "Count the lines starting DECISION:, and list each action item marked [open] as "
        "'Owner: task (mN)'.",
        schema=schema,
        max_tokens=300,
    ),
    meetings,
)
failed = [f for f in found if isinstance(f, Failure)]
if failed:
    fail(f"{len(failed)} of {len(meetings)} meetings could not be read: {failed[0].message}")
done({
    "decisions": sum(f["decisions"] for f in found),
    "open_actions": sorted(a for f in found for a in f["open_actions"]),
})
