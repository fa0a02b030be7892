"""The runtime: turn loop, budget ledger, providers, chunker and transcript."""
