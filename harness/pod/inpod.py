"""What istio-cni and ztunnel agree on for a pod in ambient mode (istio/istio cni/pkg/config/config.go): the mark
every socket ztunnel opens in the pod carries, and the DNS proxy's port. Shared by the in-pod rules
(harness/pod/ambient.py) and the DNS proxy (harness/pod/dns_proxy.py), which runs standalone."""

INPOD_MARK = 0x539  # InpodMark (1337)
INPOD_MASK = 0xFFF
DNS_CAPTURE_PORT = 15053  # DNSCapturePort; ztunnel's DEFAULT_DNS_PORT
SO_MARK = 36  # <asm-generic/socket.h>; Python's socket module exposes it only from 3.12
