"""What lives in the pod besides the VM: the sidecars (real Envoy behind Istio's or Linkerd's interception
rules), Envoy's launcher and bootstraps, and the project's splice relay (proxy.py, a standard-library-only
program). Imports harness.lab only."""
