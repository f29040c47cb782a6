"""The docker runtime (harness.runtime.docker): pods as a pause container plus compute / istio-proxy / istio-init on
the project's own Docker engine, the harness as the CNI, real capabilities and seccomp. `make test` starts the
engine these tests use (and stops it afterwards if it started it)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest

from harness.lab.session import LabSession
from harness.lab.vocabulary import TrafficPath
from harness.lab.waiting import wait_until
from harness.runtime.docker import ComputeSpec, explain_refusal
from harness.runtime.engine import LABEL_RUN, EngineUnavailable, client
from harness.runtime.image import docker_runtime
from tests.conftest import REPO, assert_clean, run_through

pytestmark = pytest.mark.docker


def root_namespace_state() -> dict[str, str]:
    def out(*argv: str) -> str:
        return subprocess.run(list(argv), capture_output=True, text=True).stdout

    return {
        "links": out("ip", "-o", "link", "show"),
        "rules": out("ip", "rule", "show"),
        "routes": out("ip", "route", "show", "table", "all"),
        "nft": out("nft", "list", "ruleset"),
    }


@pytest.fixture(scope="module")
def engine():
    try:
        engine = client()
    except EngineUnavailable as e:
        pytest.fail(f"{e} (make test starts it)")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def runtime(engine):
    return docker_runtime(ComputeSpec(), with_qemu=False)


@pytest.fixture
def docker_lab(tmp_path, engine, runtime):
    before = root_namespace_state()
    with LabSession(log_dir=tmp_path / "logs") as session:
        session.pod_runtime = runtime
        yield session
    try:
        assert_clean(session.run_id)
        assert not engine.containers.list(all=True, filters={"label": f"{LABEL_RUN}={session.run_id}"})
        assert not engine.images.list(filters={"label": f"{LABEL_RUN}={session.run_id}"})
        assert root_namespace_state() == before
    finally:
        session.state.remove_file()


@pytest.fixture
def docker_bed(docker_lab):
    with docker_lab.bed() as bed:
        yield bed


def test_the_pod_is_a_pause_container_wired_by_the_harness(docker_bed):
    pod = docker_bed.pod_handle
    pause, compute = pod.containers["pause"], pod.containers["compute"]
    assert pause.attrs["HostConfig"]["NetworkMode"] == "none"
    assert compute.attrs["HostConfig"]["NetworkMode"] == f"container:{pause.id}"
    assert not compute.attrs["HostConfig"]["CapAdd"]  # Docker's defaults: no NET_ADMIN
    pid = int(pause.attrs["State"]["Pid"])
    assert Path(f"/proc/{pid}/ns/net").stat().st_ino == docker_bed.pod.inode
    assert docker_bed.pod.addresses("eth0")  # the CNI's veth, moved in and addressed by the harness
    # A process started in the pod runs in compute, under Docker's default capabilities.
    proc = docker_bed.start_process(["sleep", "30"], name="probe", ns=docker_bed.pod)
    assert proc.container == "compute"
    status = Path(f"/proc/{proc.pid}/status").read_text()
    cap_eff = int(next(ln for ln in status.splitlines() if ln.startswith("CapEff:")).split()[1], 16)
    assert not cap_eff & (1 << 12)  # CAP_NET_ADMIN
    assert "Seccomp:\t2" in status  # Docker's default seccomp profile (filter mode)


@pytest.mark.parametrize("strategy", ["masquerade", "slirp"])
@pytest.mark.parametrize("sidecar", ["none", "envoy-redirect"])
@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_bindings_carry_tcp_both_ways_in_containers(docker_bed, netns_guest, strategy, sidecar, direction):
    sample, evidence, side = run_through(docker_bed, netns_guest, strategy, sidecar, direction)
    assert sample.status == "ok", sample.reason
    if sidecar == "none":
        assert evidence.path is TrafficPath.NO_SIDECAR
    else:
        assert evidence.path is TrafficPath.THROUGH_MESH, evidence
        assert side.process.container == "istio-proxy"
        assert "istio-proxy" in docker_bed.pod_handle.containers


def test_in_pod_setup_is_refused_and_the_reason_names_what(docker_lab, netns_guest, runtime):
    """The 2018 design: the pod sets itself up. In Docker's default compute container its first step, a sysctl,
    meets the read-only /proc/sys; its NAT rules are refused for lack of CAP_NET_ADMIN, and pass with it."""
    from dataclasses import replace

    from harness.lab.rules import apply_iptables
    from strategies import strategy_class

    docker_lab.pod_runtime = replace(runtime, setup="in-pod")
    with docker_lab.bed() as bed:
        with pytest.raises(Exception) as failure, bed.strategy_setup():  # noqa: B017 - the strategy's own error
            strategy_class("iptables-only")().setup(bed, netns_guest)
        assert "read-only path" in explain_refusal(str(failure.value), ComputeSpec()), str(failure.value)
        with pytest.raises(Exception) as failure, bed.strategy_setup():  # noqa: B017
            apply_iptables(bed.pod, "nat", ["-A POSTROUTING -s 198.19.0.2/32 -j MASQUERADE"])
        reason = explain_refusal(str(failure.value), ComputeSpec())
        assert "CAP_NET_ADMIN" in reason and "netfilter" in reason, (reason, str(failure.value))
    docker_lab.pod_runtime = replace(runtime, setup="in-pod", compute=ComputeSpec(cap_add=("NET_ADMIN",)))
    with docker_lab.bed() as bed:
        with bed.strategy_setup():
            apply_iptables(bed.pod, "nat", ["-A POSTROUTING -s 198.19.0.2/32 -j MASQUERADE"])
        assert "198.19.0.2/32 -j MASQUERADE" in bed.pod.run(["iptables-save", "-t", "nat"])


def test_tproxy_relay_needs_net_raw_or_net_admin_in_compute(docker_lab, netns_guest, runtime):
    """With a node agent doing the rules, the pod-side part of tproxy is its relay's IP_TRANSPARENT socket,
    which the kernel grants with CAP_NET_RAW (in Docker's defaults) or CAP_NET_ADMIN: it works in a default
    compute container and is refused, naming both, once NET_RAW is dropped."""
    from dataclasses import replace

    from strategies import strategy_class

    with docker_lab.bed() as bed:
        sample, _, _ = run_through(bed, netns_guest, "tproxy", "none", "egress")
    assert sample.status == "ok", sample.reason
    docker_lab.pod_runtime = replace(runtime, compute=ComputeSpec(cap_drop=("NET_RAW",)))
    with docker_lab.bed() as bed, pytest.raises(Exception) as failure, bed.strategy_setup():  # noqa: B017
        strategy_class("tproxy")().setup(bed, netns_guest)
    reason = explain_refusal(str(failure.value), ComputeSpec(cap_drop=("NET_RAW",)))
    assert "IP_TRANSPARENT" in reason and "CAP_NET_RAW or CAP_NET_ADMIN" in reason, (reason, str(failure.value))


def test_a_missing_device_is_named():
    message = "qemu-system-x86_64: -netdev tap,ifname=tap0: could not open /dev/net/tun: No such file or directory"
    expected = "refused by the container: the device /dev/net/tun (not passed)"
    assert explain_refusal(message, ComputeSpec(devices=())) == expected


@pytest.fixture(scope="module")
def qemu_runtime(engine):
    return docker_runtime(ComputeSpec(), with_qemu=True)


@pytest.mark.vm
@pytest.mark.parametrize("strategy", ["masquerade", "slirp"])
def test_the_qemu_guest_boots_inside_compute(docker_lab, qemu_runtime, strategy):
    """QEMU runs in the compute container (Docker's default capabilities, /dev/net/tun and /dev/kvm passed):
    a tap binding attaches to the tap virt-handler's role made (owned by QEMU's uid), slirp needs nothing."""
    from harness.guests.choice import driver_for
    from harness.guests.spec import GuestSpec, QemuOptions, tcg_acceleration
    from harness.lab.vocabulary import GuestKind

    docker_lab.pod_runtime = qemu_runtime
    spec = GuestSpec(GuestKind.QEMU, QemuOptions(boot_timeout_s=120), tcg_acceleration("forced by the test"))
    with docker_lab.bed() as bed:
        sample, _, _ = run_through(bed, driver_for(spec, f"docker-{strategy}"), strategy, "none", "ingress")
        qemu = next(p for p in bed.processes if p.argv[0].endswith("qemu-system-x86_64"))
        assert qemu.container == "compute"
    assert sample.status == "ok", sample.reason


@pytest.mark.vm
def test_passt_needs_a_user_namespace_which_the_default_seccomp_profile_refuses(docker_lab, qemu_runtime):
    """passt sandboxes itself in a user namespace: under Docker's default seccomp profile (RuntimeDefault)
    compute cannot create one, and the reason names it; without a filter (KubeVirt's default virt-launcher pod,
    no SeccompConfiguration) the same binding carries TCP."""
    from dataclasses import replace

    from harness.guests.choice import driver_for
    from harness.guests.spec import GuestSpec, QemuOptions, tcg_acceleration
    from harness.lab.vocabulary import GuestKind
    from strategies import strategy_class

    spec = GuestSpec(GuestKind.QEMU, QemuOptions(boot_timeout_s=120), tcg_acceleration("forced by the test"))
    docker_lab.pod_runtime = qemu_runtime
    with docker_lab.bed() as bed:
        try:  # refused at setup, or (if passt ends only after QEMU attached) dead with its reason in its log
            strategy_class("passt")().setup(bed, driver_for(spec, "docker-passt"))
            message = ""
        except Exception as e:  # noqa: BLE001 - the strategy's own error, whatever its type
            message = str(e)
        passt = next(p for p in bed.processes if p.name.endswith("-passt"))
        wait_until(lambda: not passt.alive(), timeout=10, what="passt ending")
        message += "\n" + passt.log_tail(5)
    reason = explain_refusal(message, ComputeSpec())
    assert "user namespace" in reason and "CAP_SYS_ADMIN" in reason, (reason, message)
    docker_lab.pod_runtime = replace(qemu_runtime, compute=ComputeSpec(seccomp="unconfined"))
    with docker_lab.bed() as bed:
        sample, _, _ = run_through(bed, driver_for(spec, "docker-passt"), "passt", "none", "ingress")
    assert sample.status == "ok", sample.reason


def test_engine_down_refuses_while_a_live_run_leases_the_engine(engine):
    """Issue 27, item 2: `make test`'s `engine down` stopped the engine under another process's live docker run.
    A run leases its runtime in its ledger (LabSession.lease) before it first asks the engine; `engine down`
    (also `--if-started-by`) refuses in one sentence while such a run's owner lives, and the engine keeps
    answering. Here the run is a real LabSession whose owner is this process."""
    from harness.runtime.engine import answers
    from tests.conftest import cli

    with LabSession() as lab:
        lab.lease("docker")
        for extra in ([], ["--if-started-by", "make-test"]):
            proc = cli("engine", "down", *extra)
            out, _ = proc.communicate(timeout=120)
            if extra and "no engine of ours" in out:
                continue  # the engine was started by someone else: --if-started-by leaves it alone anyway
            assert proc.returncode == 2 and out.startswith("error: the engine serves live runs") and lab.run_id in out
            assert out.count("\n") == 1
        assert answers()


def test_engine_down_refuses_in_a_runs_first_seconds(engine):
    """Issue 46, item 4: in its first ~2 s a docker run asked the engine before its ledger held the lease, and
    `engine down` then stopped the engine under it. A command takes the engine lease (a file naming its PID and
    start time) before its first request; `engine down` checks leases and stops the engine under one lock, so a
    lease is either seen or taken after the engine is gone. Here a process that holds only the lease (no ledger
    yet, as a run in its first second) keeps the engine up; once it is dead its lease is void."""
    from harness.runtime.engine import LEASES, answers
    from tests.conftest import cli

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom harness.runtime.engine import take_lease\n"
            "take_lease('run starting')\nprint('leased', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout.readline().strip() == "leased"
        proc = cli("engine", "down")
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 2 and out.startswith("error: the engine serves live runs") and str(holder.pid) in out
        assert answers()
    finally:
        holder.kill()
        holder.wait()
    stale = [p for p in LEASES.glob(f"{holder.pid}-*")]
    assert stale, "a SIGKILLed holder leaves its lease file, which no longer counts"
    from harness.runtime.engine import live_leases

    assert all(lease["pid"] != holder.pid for lease in live_leases()) and not any(p.exists() for p in stale)


def test_a_beds_leftover_containers_do_not_block_the_next_bed_of_the_run(docker_lab):
    """Issue 27: container names are per bed, not per run. A bed whose containers outlived it (an engine stopped
    mid-teardown) used to make the next bed of the same run fail with Docker's 409 name conflict."""
    with docker_lab.bed() as first:
        first_pod = first.pod_handle
        leftover = first_pod.containers.pop("pause")  # as if its removal failed: it stays in the engine
    try:
        with docker_lab.bed() as second:  # the next bed of the same run: same pod namespace name
            assert second.pod_handle.container_name("pause") != first_pod.container_name("pause")
            assert second.pod_handle.containers["pause"].status == "running"
    finally:
        leftover.remove(force=True)


def test_clean_of_a_run_without_a_ledger_removes_its_labelled_containers(engine, runtime):
    """Issue 27: `clean RUN_ID` of a run that left containers but no ledger (its ledger removed, or never
    written) finds them by the run's label."""
    from harness.lab.names import new_run_id
    from tests.conftest import cli

    run_id = new_run_id()
    container = engine.containers.create(
        runtime.image, ["sleep", "600"], name=f"vmnb-{run_id}-orphan", labels={LABEL_RUN: run_id}, network_mode="none"
    )
    try:
        proc = cli("clean", run_id)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        assert f"cleaned runs: {run_id}" in out and f"removed container vmnb-{run_id}-orphan" in out, out
        assert not engine.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)
