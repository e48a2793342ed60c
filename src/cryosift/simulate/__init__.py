"""Synthetic data with ground truth."""
