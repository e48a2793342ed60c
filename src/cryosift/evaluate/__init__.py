"""Accuracy of cryosift's decisions against ground truth (:mod:`cryosift.evaluate.outliers`)."""
