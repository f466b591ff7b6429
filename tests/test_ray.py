"""--executor ray on a real local Ray cluster: started here on the loopback address (as
``ray start --head``), stopped at the end. Skipped when Ray is not installed, unless
CNNVIZ_REQUIRE_RAY=1 (as in .ci/run), where that is a failure.

The same inputs give the same site on Ray as in-process, byte for byte; a worker killed mid-task
is retried and the build completes; a driver killed mid-build leaves no site, and the next build
reuses the units that had finished.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_valid_links, site_files

# A cluster on this machine alone listens on the loopback address only; this must be set before
# Ray is first imported in this process (the driver), as the tool does for a local cluster.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

DEMO_LAYERS = ("conv3", "conv4")
# /proc/net/tcp(6) spellings of 127.0.0.1, ::1 and ::ffff:127.0.0.1
LOOPBACK_HEX = ("0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


def _require_ray():
    if importlib.util.find_spec("ray") is None:
        if os.environ.get("CNNVIZ_REQUIRE_RAY") == "1":
            pytest.fail("ray is not installed but CNNVIZ_REQUIRE_RAY=1")
        pytest.skip("ray is not installed (pip install 'cnnviz_report[ray]')")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening_elsewhere(pids: set[int]) -> list[str]:
    """Listening TCP sockets of ``pids`` on any address but the loopback."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        inodes = {}
        with open(table) as handle:
            for line in list(handle)[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    inodes[fields[9]] = fields[1]
        for pid in pids:
            try:
                links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            except OSError:
                continue
            for link in links:
                inode = link[len("socket:["):-1] if link.startswith("socket:[") else None
                address = inodes.get(inode, "")
                host = address.split(":")[0]
                if address and host not in LOOPBACK_HEX:
                    found.append(f"{pid}: {address}")
    return found


@pytest.fixture(scope="module")
def ray_cluster():
    """(address, process group) of a Ray head on 127.0.0.1 with 2 CPUs, for this module."""
    _require_ray()
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="cnnviz-ray-", dir="/tmp")  # short: Ray's socket paths are limited
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled")
    auth_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # the driver (this process): a loopback-only test cluster
    ray_script = Path(sys.executable).with_name("ray")
    log = open(os.path.join(temp, "start.log"), "w")
    head = subprocess.Popen([str(ray_script), "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start: {open(log.name).read()[-2000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", head.pid
    finally:
        for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):  # the head, GCS, raylet and workers
            try:
                os.killpg(head.pid, sig)
                head.wait(timeout=grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        if auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth_mode


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """160 noise-and-stripe pictures in two classes: two shards of the data-set pass."""
    from PIL import Image

    root = tmp_path_factory.mktemp("ray-dataset")
    rng = np.random.default_rng(3)
    for number in range(160):
        label = ("stripes", "noise")[number % 2]
        (root / label).mkdir(exist_ok=True)
        picture = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        if label == "stripes":
            picture[:, ::6] = 255
        Image.fromarray(picture).save(root / label / f"{number:03d}.png")
    return root


def _assert_same_site(a: Path, b: Path) -> None:
    files_a, files_b = site_files(a), site_files(b)
    assert sorted(files_a) == sorted(files_b)
    different = [name for name in files_a if files_a[name] != files_b[name]]
    assert different == [], f"{len(different)} files differ, e.g. {different[:5]}"


STEPS = 10  # enough for a unit to be caught running; the pictures are not looked at here


def _config(out: Path, **changes):
    from cnnviz_report.config import ReportConfig

    return ReportConfig(out=str(out), layers=DEMO_LAYERS, ascent_steps=STEPS, **changes)


@pytest.fixture(scope="module")
def local_site(tmp_path_factory):
    """The in-process build the Ray builds must equal (default batch plan, no cache)."""
    from cnnviz_report.build import build_site

    out = tmp_path_factory.mktemp("local") / "site"
    build_site(_config(out, use_cache=False))
    return out


def test_a_ray_build_is_byte_identical_to_the_local_build(ray_cluster, small_dataset, tmp_path, monkeypatch):
    """Ascent batches of 8 (4 units a layer) and two data-set shards, on two Ray workers."""
    from cnnviz_report.analysis.ascent import LayerAscent
    from cnnviz_report.build import build_site

    monkeypatch.setattr(LayerAscent, "batch_size", lambda self, filters: min(8, filters))  # the driver plans
    address, _ = ray_cluster
    common = dict(use_cache=False, dataset=str(small_dataset), images=(), max_filters=32)
    local = build_site(_config(tmp_path / "local", **common))
    remote = build_site(_config(tmp_path / "ray", executor="ray", ray_address=address, **common))
    assert local.units_computed == remote.units_computed == 2 * 4 + 2
    _assert_same_site(tmp_path / "local", tmp_path / "ray")
    assert remote.report.dataset.class_counts == (80, 80) and remote.report.dataset.images == 160


def test_a_gallery_on_ray_equals_the_local_gallery(ray_cluster, tiny_model_file, photo_path, tmp_path):
    """Two models' units on one executor (each model's work set up in the same workers)."""
    from cnnviz_report.gallery import build_gallery, gallery_configs

    address, _ = ray_cluster
    common = dict(images=(photo_path,), ascent_steps=2, max_filters=4, use_cache=False)
    build_gallery(gallery_configs(["demo", tiny_model_file], common), str(tmp_path / "local"))
    remote = gallery_configs(["demo", tiny_model_file], dict(common, executor="ray", ray_address=address))
    result = build_gallery(remote, str(tmp_path / "ray"))
    assert [entry.build.units_computed for entry in result.entries] == [4, 2]  # a unit a layer here
    _assert_same_site(tmp_path / "local", tmp_path / "ray")


def test_a_ray_address_where_nothing_answers_is_one_line_and_writes_nothing(tmp_path, capsys):
    from cnnviz_report.cli import main

    _require_ray()
    out = tmp_path / "site"
    started = time.monotonic()
    assert main(["build", "--out", str(out), "--executor", "ray", "--ray-address", f"127.0.0.1:{_free_port()}"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("cnnviz_report: error: --ray-address 127.0.0.1:") and "no Ray cluster answers there" in error
    assert "\n" not in error and time.monotonic() - started < 30 and not out.exists()
    assert main(["build", "--out", str(out), "--ray-address", "127.0.0.1:6379"]) == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err and not out.exists()


def test_a_ray_cluster_on_this_machine_listens_on_the_loopback_only(ray_cluster):
    _, group = ray_cluster
    pids = {int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _in_group(int(pid), group)}
    assert len(pids) >= 3  # the head, its GCS and raylet at least
    assert _listening_elsewhere(pids) == []


def _in_group(pid: int, group: int) -> bool:
    try:
        return os.getpgid(pid) == group
    except OSError:
        return False


def _cli(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen([sys.executable, "-m", "cnnviz_report", "build", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _workers_running(name: str = "run_unit") -> list[int]:
    """Ray worker processes executing a task (Ray titles them ``ray::<function>``)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if handle.read().split(b"\0")[0].decode(errors="replace").strip() == f"ray::{name}":
                    found.append(int(pid))
        except OSError:
            continue
    return found


def _wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_a_worker_killed_mid_task_is_retried_and_the_site_is_the_same(ray_cluster, local_site, tmp_path):
    address, _ = ray_cluster
    out = tmp_path / "site"
    build = _cli(["--out", str(out), "--layers", *DEMO_LAYERS, "--ascent-steps", str(STEPS), "--no-cache", "--quiet",
                  "--executor", "ray", "--ray-address", address])
    try:
        victim = _wait_for(_workers_running, 120, "a worker running a unit")[0]
        os.kill(victim, signal.SIGKILL)
        _, err = build.communicate(timeout=300)
    finally:
        build.kill()
    assert build.returncode == 0, err[-2000:]
    assert victim not in _workers_running()
    _assert_same_site(local_site, out)


def test_a_killed_driver_leaves_a_whole_first_look_and_the_next_build_reuses_finished_units(ray_cluster, local_site, tmp_path):
    from cnnviz_report.build import build_site

    address, _ = ray_cluster
    out, cache = tmp_path / "site", tmp_path / "cache"
    build = _cli(["--out", str(out), "--layers", *DEMO_LAYERS, "--ascent-steps", str(STEPS), "--cache-dir", str(cache),
                  "--quiet", "--executor", "ray", "--ray-address", address])
    try:
        _wait_for(lambda: list(cache.glob("*/*.npz")), 180, "a finished unit in the cache")
        build.send_signal(signal.SIGKILL)
        build.wait(timeout=30)
    finally:
        build.kill()
    # the first look was published before the ascents: whole, and saying what is still being drawn
    assert assert_valid_links(out) > 10 and "This report is still being built" in (out / "index.html").read_text()
    finished_units, finished_layers = (len(list((cache / kind).glob("*.npz"))) for kind in ("units", "ascent"))
    again = build_site(_config(out, cache_dir=str(cache), executor="ray", ray_address=address))
    # a layer whose every unit had arrived was stored whole (its units then discarded)
    assert (again.units_reused, again.cache_hits) == (finished_units, finished_layers)
    assert finished_units + finished_layers >= 1 and again.cache_misses == len(DEMO_LAYERS) - finished_layers
    assert not [p for p in tmp_path.iterdir() if ".cnnviz-staging" in p.name]  # the killed build's leftovers
    _assert_same_site(local_site, out)


def test_a_pytorch_factory_file_builds_on_ray_as_in_this_process(ray_cluster, tmp_path, photo_path):
    """Issue 33: the workers have the package installed, not the user's net.py nor the file it
    imports beside it; their classes travel with the work, by value, and the site is the local one."""
    if os.environ.get("CNNVIZ_REQUIRE_BACKENDS") != "1":
        pytest.importorskip("torch")
    from test_torch_build import NET

    user = tmp_path / "user"
    user.mkdir()
    (user / "blocks.py").write_text(NET)  # the module and its factory
    (user / "net.py").write_text("from blocks import make_net  # a neighbour file, imported as python would\n")
    address, _ = ray_cluster
    common = ["build", "user/net.py:make_net", "--input-size", "32", "--images", photo_path, "--max-filters", "4",
              "--ascent-steps", "3", "--no-cache", "--no-stream", "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), RAY_AUTH_MODE="disabled")
    for where in ([], ["--executor", "ray", "--ray-address", address]):
        out = "ray" if where else "local"
        done = subprocess.run([sys.executable, "-m", "cnnviz_report", *common, "--out", out, *where], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_site(tmp_path / "local", tmp_path / "ray")
    assert (tmp_path / "ray" / "layers" / "003-conv2" / "mosaic.png").is_file()


def test_a_worker_that_cannot_import_the_models_code_says_so_in_one_line():
    """A ``package.module:make_net`` factory travels by reference: a node without the package
    cannot unpickle the work (Ray wraps the ModuleNotFoundError in its own error); the build's
    error then names the module, and survives the trip back to the driver (pickled)."""
    import pickle

    from cnnviz_report.errors import UsageError
    from cnnviz_report.executors import _fetch_work

    class UnpicklingRay:
        @staticmethod
        def get(reference):
            raise RuntimeError("System error: No module named 'mypkg' traceback: Traceback (most recent call last)")

    with pytest.raises(UsageError) as caught:
        _fetch_work(UnpicklingRay, "a reference")
    error = pickle.loads(pickle.dumps(caught.value))
    assert type(error) is UsageError and error.subject == "--executor ray" and "\n" not in str(error)
    assert error.reason.startswith("a Ray worker cannot import mypkg: a PyTorch model's code must be importable")
