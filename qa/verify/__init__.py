"""The answer verifier: a small cross-encoder that scores whether a sentence answers a question.

Runtime only (onnxruntime, no torch); the model is trained by
`python -m qa.measure.train_verifier`.
"""

from qa.verify.scorer import Calibration, PairScores, Verifier, VerifierError, load_verifier, verify_checksum

__all__ = ["Calibration", "PairScores", "Verifier", "VerifierError", "load_verifier", "verify_checksum"]
