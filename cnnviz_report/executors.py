"""Where units of work run: in this process (the default) or as tasks on a Ray cluster.

A phase describes what its units share as a *work* object: picklable (the model and the
settings), with a ``key`` naming its content, ``setup()`` making the expensive state once a
process (traced steps, a compiled forward pass) and ``run(state, unit)`` doing one unit (a batch
of filters to climb, a shard of a data set). The units are planned by the driver, so the same
inputs make the same units, and each unit's result is the same bytes wherever it runs: a build
on a cluster draws the same site as one in this process.

The driver keeps every result: ``submit`` hands it the units with a ``store`` callback (the
result cache, so a killed build's finished units are not lost), ``results`` waits for some.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import socket
from collections import OrderedDict
from typing import Callable

from .analysis.framework import backend_name
from .errors import UsageError

STATES_KEPT = 2  # a gallery builds its models one after the other: keep the current and the last
TASK_RETRIES = 3  # a task whose worker dies (killed, out of memory) runs again elsewhere

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")

_states: OrderedDict[str, tuple] = OrderedDict()  # work key -> (the work, its state), in this process


def process_state(key: str, fetch: Callable[[], object]) -> tuple:
    """(the work, its state) in this process, set up on first use; ``fetch()`` gives the work
    then (a Ray worker reads it from the object store once, not for every task)."""
    if key in _states:
        _states.move_to_end(key)
        return _states[key]
    work = fetch()
    _states[key] = (work, work.setup())
    while len(_states) > STATES_KEPT:
        _states.popitem(last=False)
    return _states[key]


def run_unit(work_holder: list, key: str, unit):
    """One unit, as a Ray task (``work_holder`` wraps the work's reference, so Ray does not
    fetch the work for every task)."""
    import ray

    work, state = process_state(key, lambda: _fetch_work(ray, work_holder[0]))
    return work.run(state, unit)


def _fetch_work(ray, reference):
    """The work from the object store; a model whose code this worker cannot import is one line."""
    try:
        return ray.get(reference)
    except Exception as error:  # Ray wraps the unpickling's ModuleNotFoundError in its own error
        missing = re.search(r"No module named '([^']+)'", str(error))
        if missing is None:
            raise
        raise UsageError("--executor ray", f"a Ray worker cannot import {missing.group(1)}: a PyTorch model's code "
                                           "must be importable on every node (install its package there, or name "
                                           "it by file, path/to/net.py:make_net, whose code travels with the work)"
                         ) from None


def warm_up() -> None:
    """A Ray worker's first task: the imports every unit needs, done before the first unit (the
    backend is the driver's: its tasks set KERAS_BACKEND)."""
    from .analysis.framework import keep_tensorflow_out

    importlib.import_module("keras")
    keep_tensorflow_out()
    for module in (backend_name(), f"{__package__}.phases.mosaics", f"{__package__}.phases.dataset_examples"):
        importlib.import_module(module)


class LocalExecutor:
    """Runs each unit in this process when its result is first asked for, in the order asked."""

    name = "local"

    def __init__(self):
        self._pending: dict[int, tuple] = {}
        self._done: dict[int, object] = {}
        self._next = 0

    def submit(self, work, units: list, store: Callable[[int, object], None] | None = None) -> list[int]:
        """Tickets for ``units`` of ``work``; ``store(i, result)`` hears unit i's result when done."""
        tickets = []
        for position, unit in enumerate(units):
            self._pending[self._next] = (work, unit, store, position)
            tickets.append(self._next)
            self._next += 1
        return tickets

    def results(self, tickets: list[int], on_each: Callable[[int, int], None] | None = None) -> list:
        """The tickets' results in their order; ``on_each(done, total)`` after each one."""
        for done, ticket in enumerate(tickets, 1):
            if ticket not in self._done:
                work, unit, store, position = self._pending.pop(ticket)
                result = work.run(process_state(work.key, lambda: work)[1], unit)
                if store is not None:
                    store(position, result)
                self._done[ticket] = result
            if on_each is not None:
                on_each(done, len(tickets))
        return [self._done.pop(ticket) for ticket in tickets]

    def close(self) -> None:
        self._pending.clear()
        self._done.clear()


class RayExecutor:
    """Runs the units as Ray tasks: on the cluster at ``address``, or on a local one started for
    the build (loopback only, no dashboard) and stopped after it. A task asks for a GPU when the
    cluster has one; one whose worker dies is retried (``TASK_RETRIES``)."""

    name = "ray"

    def __init__(self, address: str | None = None):
        if not address or address.rsplit(":", 1)[0] in LOOPBACK:
            # A cluster on this machine alone: Ray then listens on the loopback address only
            # (otherwise its servers listen on every interface, and take the machine's address).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise UsageError("--executor ray", "Ray is not installed: pip install 'cnnviz_report[ray]'") from None
        if address:
            _check_reachable(address)
        self._ray = ray
        logging.getLogger("ray").setLevel(logging.ERROR)  # its start-up lines are not the build's
        self._owns = not ray.is_initialized()
        if self._owns:
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, configure_logging=False)
                else:
                    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                             configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = f"--ray-address {address}" if address else "--executor ray"
                raise UsageError(where, f"cannot start or reach a Ray cluster: {' '.join(str(error).split())[:200]}") \
                    from None
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        # Without GPUs, a task takes a whole node's CPUs: TensorFlow already spreads one batch over
        # every core, as in-process; two tasks on one node would fight for them (and a unit's bytes
        # would then depend on how many threads summed it).
        cpus = 1 if gpus else max(1, int(min(node["Resources"].get("CPU", 1) for node in nodes)))
        # Workers run on the driver's Keras backend, whatever their own environment says
        backend = {"env_vars": {"KERAS_BACKEND": backend_name()}}
        self._task = ray.remote(run_unit).options(num_cpus=cpus, num_gpus=gpus, max_retries=TASK_RETRIES,
                                                  retry_exceptions=False, runtime_env=backend)
        # Each node's worker imports the backend and this package while the driver loads the model.
        warm = ray.remote(warm_up).options(num_cpus=cpus, num_gpus=gpus, runtime_env=backend)
        self._warming = [warm.remote() for _ in nodes]
        self._work_refs: dict[str, object] = {}
        self._pending: dict[object, tuple] = {}  # object ref -> (ticket, store, position)
        self._done: dict[int, object] = {}
        self._next = 0

    def submit(self, work, units: list, store: Callable[[int, object], None] | None = None) -> list[int]:
        if work.key not in self._work_refs:
            self._ship_user_code()
            self._work_refs[work.key] = self._ray.put(work)  # once: every task of the work reads it
        tickets = []
        for position, unit in enumerate(units):
            reference = self._task.remote([self._work_refs[work.key]], work.key, unit)
            self._pending[reference] = (self._next, store, position)
            tickets.append(self._next)
            self._next += 1
        return tickets

    def _ship_user_code(self) -> None:
        """A PyTorch factory file's classes (and its neighbours') pickled by value: the workers
        have the package installed, not the user's files."""
        import sys

        from .analysis.torch_loading import USER_CODE_MODULES

        for name in sorted(USER_CODE_MODULES):
            self._ray.cloudpickle.register_pickle_by_value(sys.modules[name])

    def results(self, tickets: list[int], on_each: Callable[[int, int], None] | None = None) -> list:
        """As ``LocalExecutor.results``; meanwhile every other finished task is stored too."""
        wanted = set(tickets)
        while not wanted <= self._done.keys():
            ready, _ = self._ray.wait(list(self._pending), num_returns=1)
            for reference in ready:
                ticket, store, position = self._pending.pop(reference)
                try:
                    result = self._ray.get(reference)
                except self._ray.exceptions.RayTaskError as error:  # the unit's own error, as raised there
                    raise error.cause if isinstance(error.cause, BaseException) else error from None
                if store is not None:
                    store(position, result)
                self._done[ticket] = result
                if on_each is not None and ticket in wanted:
                    on_each(len(wanted & self._done.keys()), len(tickets))
        return [self._done.pop(ticket) for ticket in tickets]

    def close(self) -> None:
        for reference in [*self._pending, *self._warming]:
            self._ray.cancel(reference, force=True)
        self._pending.clear()
        if self._owns:
            self._ray.shutdown()


REACH_SECONDS = 5.0


def _check_reachable(address: str) -> None:
    """One line now rather than Ray's own retries, which log for minutes, when nothing answers at
    a HOST:PORT address (``auto`` and ``ray://`` addresses are left to Ray)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UsageError(f"--ray-address {address}", f"no Ray cluster answers there ({reason})") from None


def make_executor(name: str, address: str | None = None):
    return RayExecutor(address) if name == "ray" else LocalExecutor()
