"""Zero-shot evaluation: datasets, metrics, the ONNX evaluator, a PyTorch baseline and reports."""
