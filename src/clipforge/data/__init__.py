"""Labelled image data for evaluation and calibration: local image folders, parquet/arrow tables, CSV/JSONL
manifests and hub datasets, read into paths or encoded bytes plus labels (``labelled.load_eval_data``), and the
readers, column and sample rules under them (``sources``). Below ``builder`` (calibration reads it) and
``evaluation``; above ``runtime`` only."""
