"""Experiments: scenarios and their test kinds, the runner, one test's measurement frame, the tool drivers
(iperf3, sockperf, vmnb-crr), CPU accounting, `describe`, and the seed claims' probes. Imports every layer
below it: harness.lab, harness.pod, harness.guests, strategies, harness.analysis."""
