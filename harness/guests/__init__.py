"""The VM and every other place a tool runs. `base.Guest` is the one interface (run, start, wait, fetch a
file, facts) that the peer, the pod, the netns guest and the QEMU guest all answer; `driver.GuestDriver` is
the one seam through which strategies attach a guest (tap, user-mode stack, passt socket), chosen once per
run by kind (`drivers.driver_for`). Imports harness.lab and harness.pod only."""
