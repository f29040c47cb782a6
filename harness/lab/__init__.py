"""The lab: what every run stands on. Names, the state ledger, processes tracked by PID, network namespaces,
packet-filter rules, the test bed's topology, waiting, cleanup, and the LabSession that ties them together.
Imports nothing else of harness/ (the bottom layer)."""
