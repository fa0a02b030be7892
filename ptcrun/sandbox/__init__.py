"""The sandbox: a confined child process that runs planner programs, and its host-side driver."""
