"""Populations: K networks of one shape trained in lockstep, as one array program.

The paper's results are maxima over many trials of *small* networks, and a
small network's training step is mostly Python overhead: dozens of array
operations, each on a few kilobytes. A population puts a member axis in front
of every array, so each operation works on all K members at once and the
overhead is paid once per step, not once per member:

    W_h (N, G*N)  ->  (K, N, G*N)      h (B, N)  ->  (K, B, N)      loss ()  ->  (K,)

The cells, the BPTT driver and the network are the same code (they are written
over the trailing axes; see :mod:`rnncap.cells.base`). What members share: the
cell, depth, sizes, nonlinearity, optimiser, number of steps and batch shape.
What they may differ in: every numeric hyperparameter (learning rate and its
decay, momentum, clipping, L2, ``b_fg``, ``b_fg_y``, the initial scales), the
seed, and the data (each member has its own task, dataset and minibatch
generator; the capacity task's ``b`` may differ).

Members are independent. Member k's loss is its own mean, and the gradient of
the sum of the members' losses is each member's own gradient, so member k is
trained exactly as it would be alone, up to float32 rounding (a stacked matmul
and a per-member norm may sum in another order). A member whose loss diverges
is frozen: recorded infeasible at that step, its gradients zeroed and its
learning rate set to zero, while the others go on.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time

import numpy

from rnncap import checkpoint as ckpt
from rnncap.backend import to_numpy
from rnncap.errors import RnncapError
from rnncap.network import Network
from rnncap.optim import add_l2, clip_by_norm, flatten, l2_penalty, learning_rate, make_optimizer
from rnncap.progress import ProgressBar
from rnncap.tasks.base import population_batches
from rnncap.train import (TrainConfig, TrainResult, better_of, checkpoint_due, diverged_reason, history_stride,
                          whole_from)

MEMBER_CONSTANTS = ("b_fg", "b_fg_y")     # the cell's forward constants that members may differ in
# the training settings a population's members must share (the numbers in TrainConfig may differ)
SHARED_SETTINGS = ("optimizer", "steps", "eval_every", "checkpoint_every", "lr_schedule", "full_batch_tail")
POPULATION_PARAMS = 8_000                 # the default population holds about this many parameters in all
MAX_POPULATION = 32
MAX_GP_POPULATION = 4                     # a GP proposes this many at once before it sees a result


def default_population(n_params: int, strategy: str = "random") -> int:
    """How many trials of ``n_params`` parameters to train together by default (CPU).

    Small networks gain the most: their steps are mostly Python overhead,
    which a population pays once (``benchmarks/throughput.py`` measures it).
    A GP study takes at most :data:`MAX_GP_POPULATION`: each population is
    proposed before any of its results are in, and a GP that proposes 20
    points blind is mostly a random search.
    """
    size = max(1, min(MAX_POPULATION, POPULATION_PARAMS // max(1, n_params)))
    return min(size, MAX_GP_POPULATION) if strategy == "gp" else size


def stack(nets: list[Network]) -> Network:
    """The population of ``nets`` (K networks of one shape): every parameter stacked on a new axis 0."""
    first = nets[0]
    shape = lambda n: (type(n.cell), n.cell.nonlinearity, n.depth, n.n_in, n.n_out, n.n_h, n.dtype, n.xp)  # noqa: E731
    if any(shape(n) != shape(first) for n in nets):
        raise RnncapError("a population's members must share cell, nonlinearity, depth, sizes, dtype and device")
    xp, K = first.xp, len(nets)
    pop = copy.copy(first)
    pop.members = (K,)
    pop.params = {name: xp.stack([n.params[name] for n in nets]) for name in first.params}   # (K, ...)
    varying = {}
    for name in MEMBER_CONSTANTS:
        if hasattr(first.cell, name):
            values = [getattr(n.cell, name) for n in nets]
            if len(set(values)) > 1:                       # (K, 1, 1): broadcasts against (K, B, N)
                varying[name] = xp.asarray(values, dtype=first.dtype).reshape(K, 1, 1)
    pop.cell = dataclasses.replace(first.cell, **varying)
    pop.member_cells = [n.cell for n in nets]
    return pop


def member(pop: Network, k: int) -> Network:
    """Member ``k`` of a population as a network of its own (its parameters are views into the population's)."""
    net = copy.copy(pop)
    net.members = ()
    net.params = {name: value[k] for name, value in pop.params.items()}
    net.cell = pop.member_cells[k]
    return net


def _shared(configs: list[TrainConfig], tasks) -> TrainConfig:
    first = configs[0]
    for name in SHARED_SETTINGS:
        if len({getattr(c, name) for c in configs}) > 1:
            raise RnncapError(f"a population's members must share {name}")
    if first.optimizer == "lbfgs":
        raise RnncapError("L-BFGS trains one network at a time: use a population of 1")
    if len({type(t) for t in tasks}) > 1:
        raise RnncapError("a population's members must share the task")
    return first


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def train_population(nets: list[Network], tasks: list, configs: list[TrainConfig], *, progress=None,
                     time_limit: float | None = None, checkpoint_path=None, resume: bool = False,
                     checkpoint_seconds: float | None = None) -> list[TrainResult]:
    """Train ``nets[k]`` on ``tasks[k]`` with ``configs[k]``, all at once; one :class:`TrainResult` each.

    The loop is :func:`rnncap.train.train`'s, member by member: the same
    batches (each member's own generator, seeded by its config), the same
    divergence rule, the same evaluations. The members' parameters are left
    in ``nets`` when it returns.

    Checkpoints work as :func:`rnncap.train.train`'s, for the whole
    population in one file (every member's arrays, generator, history and
    status): a run killed at any moment and resumed ends bit for bit as one
    that was never stopped.
    """
    started = time.perf_counter()
    config = _shared(configs, tasks)
    K, task0 = len(nets), tasks[0]
    pop = stack(nets)
    xp = pop.xp
    array = lambda name, none=math.inf: numpy.array([none if getattr(c, name) is None else getattr(c, name)  # noqa: E731
                                                     for c in configs], dtype=numpy.float64)
    lr0, decay, clip, l2, factors = (array(name) for name in ("lr", "lr_decay", "clip", "l2", "diverge_factor"))
    optimizer = make_optimizer(config.optimizer, array("momentum"))
    opt_state = optimizer.init(pop.params, members=1)
    rngs = [numpy.random.default_rng(c.seed) for c in configs]
    next_batch = population_batches(tasks, rngs, whole_from(config, task0))
    active = numpy.ones(K, dtype=bool)
    first_loss = numpy.full(K, math.nan)
    reported = numpy.full(K, math.nan)
    steps_done = numpy.zeros(K, dtype=int)
    status, reason = ["done"] * K, [None] * K
    best, history = [None] * K, [[] for _ in range(K)]
    stride, carried, last = history_stride(config.steps), None, None
    step, elapsed_before = 0, 0.0
    identity = {"population": [ckpt.run_identity(n, t, c) for n, t, c in zip(nets, tasks, configs)]}
    if checkpoint_path is not None:
        saved = ckpt.load_if_resuming(checkpoint_path, resume, identity)
        if saved is not None:
            step, elapsed_before = saved.step, saved.elapsed
            ckpt.restore(saved, pop.params, opt_state, rngs)
            carried = ckpt.carried_state(saved, xp)
            for k, record in enumerate(saved.members):
                first_loss[k] = math.nan if record.first_loss is None else record.first_loss
                reported[k] = math.nan if record.loss is None else record.loss
                best[k], history[k], status[k], reason[k] = record.best, record.history, record.status, record.reason
                steps_done[k], active[k] = record.steps, record.status == "done"
    saved_at = time.perf_counter()

    def save() -> None:
        members = [ckpt.member_record(rngs[k], _nan_to_none(first_loss[k]), best[k], history[k], status=status[k],
                                      reason=reason[k], steps=int(steps_done[k]), loss=_nan_to_none(reported[k]))
                   for k in range(K)]
        ckpt.save(checkpoint_path, identity, step=step, params=pop.params, opt_state=opt_state, members=members,
                  carried=carried, elapsed=elapsed_before + time.perf_counter() - started)

    def check(value) -> None:
        """Freeze every training member whose loss ``value`` (K,) has diverged (see ``diverged_reason``)."""
        with numpy.errstate(invalid="ignore"):
            suspect = active & ~(value <= factors * numpy.maximum(first_loss, 1e-8))   # NaN compares False
        for k in numpy.flatnonzero(suspect):
            why = diverged_reason(float(value[k]), float(first_loss[k]), configs[k].diverge_factor)
            if why is not None:
                active[k], status[k], reason[k] = False, "infeasible", why

    with ProgressBar(progress, config.steps, f"{task0.name} {pop.cell.name} x{K}") as bar:
        bar.update(step, f"{int(active.sum())} of {K} training")
        while step < config.steps and active.any():
            x, target, mask, carry = next_batch(step)                     # (K, T, B, ...)
            state0 = carried if carry else None
            result = pop.loss_and_grads(x, target, mask, task0.loss, state0, input_grad=False,
                                        input_steps=task0.input_steps)
            carried, grads = result.state, result.grads
            loss = to_numpy(result.loss).astype(numpy.float64) + to_numpy(add_l2(pop.params, grads, l2, K))
            first_loss = numpy.where(numpy.isnan(first_loss), loss, first_loss)
            reported[active] = loss[active]                   # a frozen member keeps the loss it stopped at
            check(loss)
            steps_done[active] = step + 1
            if not active.any():
                break
            last = (x, target, mask, state0)
            g = flatten({name: grads[name] for name in pop.params}, members=1)   # (K, P): one vector per member
            if not active.all():                           # frozen members: no gradient, no step
                g[xp.asarray(~active)] = 0.0
            clip_by_norm(g, clip)
            rate = learning_rate(lr0, decay, step, config.steps, config.lr_schedule)               # (K,)
            rate = numpy.where(active, rate, 0.0)
            optimizer.update(pop.params, g, opt_state, rate)
            step += 1
            if step % stride == 0 or step == config.steps:
                for k in numpy.flatnonzero(active):
                    history[k].append((step, float(loss[k])))
            if config.eval_every and step % config.eval_every == 0 and task0.select_best:
                for k in numpy.flatnonzero(active):
                    best[k] = better_of(tasks[k], best[k], tasks[k].evaluate(member(pop, k)))
            if checkpoint_path is not None and checkpoint_due(step, config, checkpoint_seconds, saved_at):
                save()
                saved_at = time.perf_counter()
            bar.update(step, f"{int(active.sum())} of {K} training")
            if time_limit is not None and time.perf_counter() - started > time_limit:
                break

    if checkpoint_path is not None:
        save()                     # before the final evaluation, so a resumed run sees what this one saw
    if last is not None and active.any():
        # the last update is checked too: each member's loss on the last batch, after it
        x, target, mask, state0 = last
        value, _ = task0.loss(pop.forward(x, state0, input_steps=task0.input_steps).out, target, mask)
        check(to_numpy(value).astype(numpy.float64) + to_numpy(l2_penalty(pop.params, l2, K)))
    wall = elapsed_before + time.perf_counter() - started
    results = []
    for k in range(K):
        net_k = member(pop, k)
        for name, value in net_k.params.items():          # the trained parameters, back in the member's network
            nets[k].params[name][...] = value
        metrics = {}
        if status[k] == "done":
            metrics = tasks[k].evaluate(net_k)
            if not all(bool(numpy.isfinite(to_numpy(v)).all()) for v in net_k.params.values()):
                status[k], reason[k], metrics = "infeasible", "parameters became NaN or infinite", {}
            elif task0.select_best:
                metrics = better_of(tasks[k], best[k], metrics)
        results.append(TrainResult(status[k], int(steps_done[k]), float(reported[k]), metrics, wall, reason[k],
                                   history[k]))
    return results


__all__ = ["member", "stack", "train_population"]
