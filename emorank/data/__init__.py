"""Data plumbing that grows beside :mod:`emorank.datasets`: Hugging Face datasets (:mod:`emorank.data.hub`)."""
