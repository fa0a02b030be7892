"""The corpus: reading files, cutting them into chunks, counting tokens."""
