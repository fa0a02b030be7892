# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# One document per team, a dozen meetings each: a sub-run per team reads its own document with
# worker calls and reports its counts; this program only compares the reports.
teams = sorted(data)
print({team: len(data[team]) for team in teams}, budget.remaining)

report_schema = {
    "type": "object",
    "properties": {
        "decisions": {"type": "integer"},
        "open_actions": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["decisions", "open_actions"],
}


def report(team):
    return tool.agent(
        f"These are the {team} team's meeting minutes, one chunk per meeting. Count its "
        "decisions (lines starting DECISION:) and list every action item still open "
        "(ACTION [open] ...) as 'Owner: task (mN)'.",
        data=team,
        schema=report_schema,
        max_tokens=40_000,
        max_turns=3,
    )


reports = dict(zip(teams, pmap(report, teams), strict=True))
missing = {team: r.message for team, r in reports.items() if isinstance(r, Failure)}
read = {team: r for team, r in reports.items() if team not in missing}
decisions = {team: r["decisions"] for team, r in read.items()}
most = max(decisions.values()) if decisions else None
answer = {
    "decisions": decisions,
    "open_actions": {team: sorted(r["open_actions"]) for team, r in read.items()},
    "most_decisions": sorted(team for team, n in decisions.items() if n == most),
    "missing": missing,
}
print({team: (n, len(answer["open_actions"][team])) for team, n in decisions.items()}, missing)
done(answer)
