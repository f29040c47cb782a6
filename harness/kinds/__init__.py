"""The test kinds a scenario may list: one module per kind with its tool driver (throughput.py: iperf3;
request_response.py: sockperf and vmnb-crr through latency.py and load.py; dns.py; http.py), the base class every
kind declares itself with (base.py: fields, protocol, primary metric, ports, `measure`, the cluster's client and
servers) and the frame one test runs in (measure.py: CPU accounting, traversal evidence, rows). A kind registers
itself in `TEST_KINDS` when its class is defined; importing this package defines the built-in ones."""

# Each kind registers itself as its module is imported, in this order (the order scenarios and errors list them).
from harness.kinds import throughput, request_response, dns, http, migration  # noqa: F401, I001
from harness.kinds.base import TEST_KINDS, Test, TestKind

__all__ = ["TEST_KINDS", "Test", "TestKind"]
