"""OpenTelemetry: a run's span tree as OpenTelemetry spans, live or exported from a transcript."""
