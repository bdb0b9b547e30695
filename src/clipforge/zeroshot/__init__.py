"""Zero-shot data: prompt templates (data only) and their lookup."""
