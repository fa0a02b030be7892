"""The transcript: the event schema, the writer, the reader, its records and views."""
