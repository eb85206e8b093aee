"""trace-telemetry benchmarks: ``python -m benchmarks`` (or ``tox -e bench``).

Every figure is a ratio to a baseline measured side by side, interleaved, in
the same process: the machine is shared and noisy, absolute times mean little.
"""
