"""Evaluation: run agents on the environments and report Solve-P/R/F1 with confidence intervals."""
