"""The host side of the sandbox: start the child, carry its frames, serve its calls."""
