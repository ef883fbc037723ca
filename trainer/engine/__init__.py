"""The training engine: runs, their steps (split, accumulated, CUDA graph, DDP, fused), books and state."""
