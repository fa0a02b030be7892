"""Prompt templates addressed to models, and their rendering."""
