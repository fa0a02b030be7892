"""LLM providers: one async method that takes messages and returns text plus usage."""
