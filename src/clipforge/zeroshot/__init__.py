"""Zero-shot data: prompt templates (data only) and their lookup; a generic vocabulary of photo subjects."""
