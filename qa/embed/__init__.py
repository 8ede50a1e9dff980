"""Embedding: the sentence encoder (local weights) and the ONNX question encoder."""
