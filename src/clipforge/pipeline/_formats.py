"""Byte markers of the two image formats the pipeline graphs decode, and the file names of the graphs (shared by
the graph builder and the runner; no onnx needed)."""

PNG_SIGNATURE = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
JPEG_START, JPEG_END = [0xFF, 0xD8, 0xFF], [0xFF, 0xD9]

# PREFIX + suffix: the file of each pipeline graph
SUFFIXES = {"image": "_img.onnx", "image_pixels": "_img_hwc.onnx", "text": "_txt.onnx"}
