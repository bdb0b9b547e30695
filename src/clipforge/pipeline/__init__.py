"""Single-file graphs for use without clipforge: the fixed-label classifier."""
