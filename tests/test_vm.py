"""The QEMU guest (issue 5): a real VM booted from the harness's image, attached the way KubeVirt attaches it,
carrying real iperf3 traffic both ways; and nothing left behind, also when the guest never becomes ready."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.guests.choice import driver_for
from harness.guests.qemu.accel import GuestNotReady, resolve_acceleration
from harness.guests.qemu.image import build_image, module_order, newest_kernel
from harness.guests.qemu.vm import QemuGuest
from harness.guests.spec import GuestSpec, QemuOptions, tcg_acceleration
from harness.kinds.throughput import measure_tcp_throughput
from harness.lab.names import new_run_id
from harness.lab.vocabulary import GuestKind
from strategies import strategy_class
from strategies.base import Services
from tests.conftest import assert_clean, cli, run_scenario_text

TCG = GuestSpec(GuestKind.QEMU, QemuOptions(boot_timeout_s=120), tcg_acceleration("forced by the test"))


def qemu_processes(run_id: str) -> list[int]:
    """QEMU processes of this run, found by the -name the harness gives them (looked at, never killed)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"qemu-system-x86_64") and f"vmnb-{run_id}-vm".encode() in argv:
            found.append(int(cmdline.parent.name))
    return found


def test_virtio_modules_load_after_their_dependencies():
    _, version = newest_kernel()
    names = [Path(m).name.split(".ko")[0] for m in module_order(version)]
    assert names.index("virtio_ring") < names.index("virtio") < names.index("virtio_pci") < names.index("virtio_net")
    assert names.index("failover") < names.index("net_failover") < names.index("virtio_net")


def test_guest_image_is_cached_by_content():
    first, second = build_image(), build_image()
    assert first == second
    assert first.initrd.stat().st_size > 1_000_000 and first.kernel.exists()


@pytest.mark.vm
def test_auto_acceleration_uses_kvm_only_after_a_guest_booted_with_it():
    acceleration = resolve_acceleration("auto")
    if acceleration.accel == "kvm":
        assert "became ready" in acceleration.reason
    else:
        assert acceleration.accel == "tcg" and acceleration.reason


@pytest.mark.vm
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["slirp", "masquerade", "passt-vhost-user"])
def test_qemu_guest_carries_tcp_both_ways_under_tcg(lab, strategy):
    run_id = lab.run_id
    with lab.bed() as bed:
        attachment = strategy_class(strategy)(services=Services(tcp_ports=(5201,))).setup(
            bed, driver_for(TCG, strategy)
        )
        guest = attachment.service
        assert isinstance(guest, QemuGuest) and guest.boot_s > 0
        assert attachment.facts.vm.accel == "tcg"
        assert qemu_processes(run_id)
        for direction in ("ingress", "egress"):
            sample = measure_tcp_throughput(
                attachment.ends(direction),
                port=5201,
                duration_s=1,
                omit_s=0,
                streams=1,
                label=f"{run_id}-{strategy}-{direction}",
            )
            assert sample.status == "ok", (direction, sample.reason)
            assert sample.bytes > 1_000_000, direction
        console = guest.console.read_text()
        assert "VMNB-READY" in console and "vmnb: eth0" in console
    assert not qemu_processes(run_id)
    assert_clean(run_id)


@pytest.mark.vm
def test_guest_that_never_becomes_ready_times_out_and_leaves_nothing(lab):
    run_id = lab.run_id
    spec = GuestSpec(GuestKind.QEMU, QemuOptions(boot_timeout_s=6), tcg_acceleration("forced by the test"))
    with lab.bed() as bed:
        driver_for(spec, "noready").tap(bed)
        guest = QemuGuest(
            bed,
            spec,
            netdev="tap,ifname=tap0,script=no,downscript=no",
            ip_cidr="198.19.0.2/24",
            gateway="198.19.0.1",
            extra_cmdline="vmnb.noready",
            label="noready",
        )
        with pytest.raises(GuestNotReady, match=r"did not print its ready marker within 6 s"):
            guest.boot()
        assert "vm" not in bed.namespaces and bed.pod.has_link("tap0")
    assert not qemu_processes(run_id)
    assert_clean(run_id)


VM_SCENARIO = """
name: vm-ci
guest: qemu
qemu: {accel: tcg, boot_timeout_s: 120}
strategies: [slirp, masquerade]
sidecars: [none, envoy-redirect]
repetitions: 1
tests:
  - kind: tcp_throughput
    duration_s: 1
    omit_s: 0
"""


@pytest.mark.vm
@pytest.mark.slow
def test_vm_scenario_rows_carry_the_guest_and_boot_time(tmp_path):
    scenario = tmp_path / "vm.yaml"
    scenario.write_text(VM_SCENARIO)
    run_id = new_run_id()
    proc = cli("run", str(scenario), "--results", str(tmp_path / "results"), "--run-id", run_id)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    run_dir = tmp_path / "results" / run_id
    frame = pd.read_parquet(run_dir / "samples.parquet")
    throughput = frame[frame.metric == "throughput"]
    assert len(throughput) == 8
    assert set(throughput.guest) == {"qemu"} and set(throughput.accel) == {"tcg"}
    assert set(throughput.vcpus) == {1} and set(throughput.memory_mb) == {512}
    failed = throughput[throughput.status != "ok"]
    assert failed.empty, failed[["strategy", "sidecar", "direction", "reason"]].to_string()
    with_sidecar = throughput[throughput.sidecar == "envoy-redirect"]
    assert set(with_sidecar.path) == {"through-mesh"}
    boots = frame[frame.metric == "boot_time"]
    assert len(boots) == 4 and (boots.value > 0).all()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["guest"]["kind"] == "qemu" and meta["guest"]["acceleration"]["accel"] == "tcg"
    assert list((run_dir / "logs").glob("*console.log"))
    attachments = [json.loads(p.read_text()) for p in (run_dir / "raw").glob("attachment-*.json")]
    assert len(attachments) == 4
    assert all("-netdev" in a["vm"]["qemu_argv"] and a["vm"]["vhost"] in (True, False) for a in attachments)
    assert_clean(run_id)


@pytest.mark.vm
@pytest.mark.slow
def test_slirp_in_qemu_needs_no_helper_process_and_no_net_capabilities(lab, tmp_path):
    """The two slirp claims the netns guest could not decide (issue 7): with QEMU's -netdev user the pod holds
    no process besides the VM and no tap, and setup plus traffic work without NET_ADMIN and NET_RAW."""
    from harness.analysis.results import RunWriter
    from harness.claims.privilege import TRIALS, trial
    from harness.claims.probes import ProbeContext, probe_setup_inventory

    ctx = ProbeContext(lab, RunWriter(tmp_path / "results", lab.run_id), TCG)
    inventory = probe_setup_inventory(ctx, "slirp")
    assert inventory.process_names == [] and inventory.rules == 0 and inventory.vm_netdev == "user"
    # the claim reads the first and the last of probe_privilege's trials: all capabilities, and neither net cap
    assert TRIALS[0] == () and set(TRIALS[-1]) == {"net_admin", "net_raw"}
    baseline, without = trial(lab, "slirp", TRIALS[0], TCG), trial(lab, "slirp", TRIALS[-1], TCG)
    assert baseline.works, baseline
    assert without.works, without


@pytest.mark.vm
@pytest.mark.slow
def test_qemu_7_and_10_side_by_side_each_row_says_which(tmp_path):
    """A variant names the QEMU it runs on; the rows record the version each VM ran with (issue 15). QEMU 10 is
    the default (issue 28), Debian 12's 7.2 the variant."""
    import json

    rows, _ = run_scenario_text(
        tmp_path,
        """
name: qemu-versions
guest: qemu
qemu: {accel: tcg}
strategies: [masquerade, masquerade-qemu7]
variants:
  masquerade-qemu7: {strategy: masquerade, qemu_build: debian-12}
repetitions: 1
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0, directions: [ingress]}
""",
    )
    tput = rows[rows.metric == "throughput"].set_index("strategy")
    assert (tput.status == "ok").all(), tput.reason
    qemu = {name: json.loads(tput.loc[name, "tools"])["qemu-system-x86_64"] for name in tput.index}
    assert "10.0.2" in qemu["masquerade"] and "1:7.2" in qemu["masquerade-qemu7"], qemu
