"""era-s7: an MNIST CNN under 8,000 parameters, developed in three steps (see README)."""
