"""What a run leaves and how it is read: the results folder (Sample rows, run.json), provenance (host, tool
versions, git sha), statistics, the terminal summary, reports and run-to-run comparison. Imports harness.lab,
harness.pod and harness.guests only (for the versions it records)."""
