"""Hash banks, their durable store, and Hamming-distance search (numba kernels and FAISS).

Uses only `hashing`'s types and codec.
"""
