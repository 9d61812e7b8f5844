"""pf-bench: model-only and whole-pipeline speed measurements."""
