# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# Run the workflow: each step starts as soon as the steps it depends on are done.
# No builtin needed: pmap runs the steps that have no inputs; when a step finishes, it starts
# (with a nested pmap) every step whose inputs are now all done. A nested pmap of one gives each
# step its own clock. Settings come from the workflow: parallel (false runs one step at a time,
# in dependency order, for debugging) and timeout_per_step.
import json

steps = {step["id"]: step for step in workflow["steps"]}
settings = workflow.get("execution", {})
STEP_TIMEOUT = settings.get("timeout_per_step", 60)
PARALLEL = settings.get("parallel", True)

# Check the graph before anything runs: an unknown step or a cycle ends the run here.
for sid, step in steps.items():
    for dep in step["depends_on"]:
        if dep not in steps:
            fail(f"step {sid!r} depends on {dep!r}, which is not a step; nothing was run")
order = []
waiting = {sid: set(step["depends_on"]) for sid, step in steps.items()}
while True:
    ready = sorted(sid for sid, deps in waiting.items() if not deps)
    if not ready:
        break
    for sid in ready:
        order.append(sid)
        waiting.pop(sid)
        for deps in waiting.values():
            deps.discard(sid)
if waiting:
    node, path = min(waiting), []
    while node not in path:
        path.append(node)
        node = min(waiting[node])
    cycle = [*path[path.index(node):], node]
    fail("the workflow has a cycle: " + " -> ".join(cycle) + "; nothing was run")

dependents = {sid: [t for t in order if sid in steps[t]["depends_on"]] for sid in steps}
results = {}
claims = {}


def call(sid):
    step = steps[sid]
    deps = step["depends_on"]
    text = json.dumps({d: results[d]["output"] for d in deps}) if deps else document
    return tool.worker(text, step["instruction"], schema=step.get("schema"), max_tokens=800)


def execute(sid):
    broken = [d for d in steps[sid]["depends_on"] if results[d]["status"] != "done"]
    if broken:
        return {"status": "skipped", "because": f"{broken[0]} {results[broken[0]]['status']}"}
    got = pmap(call, [sid], timeout=STEP_TIMEOUT)[0]
    if isinstance(got, Failure):
        status = "timeout" if got.kind == "TimeLimitExceeded" else "failed"
        return {"status": status, "error": got.message}
    return {"status": "done", "output": got}


def run_step(sid):
    results[sid] = execute(sid)
    # Record, then claim: the last input to finish sees them all done, and setdefault lets
    # exactly one of the inputs that see it start the step.
    ready = [
        t for t in dependents[sid]
        if all(d in results for d in steps[t]["depends_on"]) and claims.setdefault(t, sid) == sid
    ]
    if ready:
        pmap(run_step, ready)


if PARALLEL:
    pmap(run_step, [sid for sid in order if not steps[sid]["depends_on"]])
else:
    for sid in order:
        results[sid] = execute(sid)

for sid in order:
    r = results[sid]
    print(f"{sid:<14} {r['status']:<8} {r.get('error') or r.get('because') or ''}"[:120])
done({"mode": "parallel" if PARALLEL else "sequential", "order": order, "steps": {sid: results[sid] for sid in order}})
