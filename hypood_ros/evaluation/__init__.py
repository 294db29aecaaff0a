"""Evaluation on the OOD segmentation benchmarks: dataset readers, pixel metrics, tables and plots."""
