# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# Two datasets: the workflow (steps and their depends_on) and the document the steps work on.
import json

workflow = json.loads(data["workflow"][0])
document = data["document"][0]
print("workflow:", workflow["name"], "- execution:", workflow.get("execution"))
for step in workflow["steps"]:
    print("   ", step["id"], "after", step["depends_on"] or "nothing")
print("document:", len(document.splitlines()), "lines; first:", document.splitlines()[0])
