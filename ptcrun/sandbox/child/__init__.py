"""The child side of the sandbox: the program loop, the language layer, pmap and the OS layers.

Nothing here imports trio, a provider SDK or a host module."""
