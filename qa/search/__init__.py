"""Search: candidates for a question, their fused scores, the confidence, and the ranked hits."""
