"""Fused GPU kernels of the model (Triton), each beside the torch reference it must match."""
