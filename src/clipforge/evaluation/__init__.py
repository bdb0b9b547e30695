"""Zero-shot evaluation: metrics, the ONNX evaluator, retrieval, a PyTorch baseline and reports; the labelled
data they read comes from ``clipforge.data``."""
