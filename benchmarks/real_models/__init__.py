"""The public real-model suite (``python -m benchmarks.real_models``); see __main__.py."""
