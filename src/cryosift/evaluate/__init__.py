"""Accuracy of cryosift's decisions against ground truth."""

from cryosift.evaluate.outliers import outlier_rates

__all__ = ["outlier_rates"]
