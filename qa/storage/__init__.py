"""The index on disk: its folder layout and manifest, the vector store and the BM25 store."""
