"""ptcrun: a planner LLM writes small sandboxed Python programs over a corpus it never sees."""
