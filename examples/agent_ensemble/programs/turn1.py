# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# One chunk: the pull request. Look at its head and size before asking the reviewers.
pr = data[0]
lines = pr.splitlines()
print(len(data), "chunk,", len(lines), "lines")
for line in lines[:4]:
    print("   ", line[:100])
print("files:", [line.split(" b/")[-1] for line in lines if "| diff --git " in line])
