"""Benchmarks that hold Cascade to the budgets in the product brief (run them as modules).

``python -m benchmarks.relay`` measures the relay against nginx-rtmp and a raw FFmpeg tee;
see ``benchmarks/README.md``.
"""
