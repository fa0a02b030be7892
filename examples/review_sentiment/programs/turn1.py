# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# Each chunk is one review: check the shape before classifying.
print(len(data), "reviews")
for review in data[:3]:
    print("   ", review[:80])
