"""The child side of the sandbox: the program loop, the language layer, pmap and the OS layers.

The language layer's rules, where a program meets them: ``_compile`` and ``_policy`` at compile
time (with ``_names``); at run time the hooks ``_namespace`` puts in the program's globals, one
guard a module: ``_attributes`` (reads), ``_ownership`` (writes), ``_handlers`` (``except`` and
``with``), ``_class_of`` (what ``type()``, ``__class__`` and ``super`` give) and ``_modules``
(imports, with a ``_mod_*`` file for each module served through wrappers).

Nothing here imports trio, a provider SDK or a host module."""
