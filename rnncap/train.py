"""The training loop: first-order optimisers or full-batch L-BFGS, with divergence detection.

One step: ask the task for a batch, forward and backward through the
network, add the L2 penalty, clip the gradients' global norm, update. A run
whose loss becomes NaN or infinite, or grows above ``diverge_factor`` times
its first value, stops at once and comes back with status ``infeasible`` —
the paper counts such runs — rather than raising.

Runs are deterministic: the same config and seed give the same numbers, bit
for bit on NumPy. With a checkpoint path, the parameters, the optimiser state,
the generator state, the step, the carried state (truncated BPTT) and the
history are saved atomically every ``checkpoint_every`` steps; a resumed run
equals the uninterrupted one bit for bit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy

from rnncap import checkpoint as ckpt
from rnncap.backend import to_numpy
from rnncap.errors import RnncapError
from rnncap.progress import ProgressBar
from rnncap.optim import (LR_SCHEDULES, OPTIMIZERS, add_l2, clip_by_norm, flatten, l2_penalty, learning_rate,
                          make_optimizer)


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    ``lr_decay`` is the factor the learning rate has fallen by at the last
    step, along ``lr_schedule`` (:func:`rnncap.optim.learning_rate`).
    ``full_batch_tail`` is the fraction of the steps, at the end, that train
    on the task's whole dataset instead of a minibatch (tasks with a fixed
    dataset only; 0: none).
    """

    optimizer: str = "adam"
    lr: float = 1e-2
    lr_decay: float = 1.0
    lr_schedule: str = "exponential"
    full_batch_tail: float = 0.0
    momentum: float = 0.9
    clip: float | None = 10.0
    l2: float = 0.0
    steps: int = 1000
    eval_every: int = 0                   # 0: evaluate only at the end
    diverge_factor: float = 100.0
    seed: int = 0
    checkpoint_every: int = 100

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise RnncapError(f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise RnncapError(f"unknown learning-rate schedule {self.lr_schedule!r}: choose one of "
                              f"{', '.join(LR_SCHEDULES)}")
        checks = [
            (self.lr > 0 and math.isfinite(self.lr), f"the learning rate must be > 0, got {self.lr}"),
            (0 < self.lr_decay <= 1, f"lr_decay must be in (0, 1], got {self.lr_decay}"),
            (0 <= self.full_batch_tail <= 1, f"full_batch_tail must be in [0, 1], got {self.full_batch_tail}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.clip is None or self.clip > 0, f"the clipping threshold must be > 0, got {self.clip}"),
            (self.l2 >= 0, f"the L2 weight must be >= 0, got {self.l2}"),
            (self.steps >= 1, f"--steps must be >= 1, got {self.steps}"),
            (self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}"),
            (self.diverge_factor > 1, f"diverge_factor must be > 1, got {self.diverge_factor}"),
            (self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}"),
        ]
        for ok, message in checks:
            if not ok:
                raise RnncapError(message)


@dataclass
class TrainResult:
    status: str                         # "done" or "infeasible"
    steps: int                          # steps taken
    loss: float                         # the last training loss (with the L2 penalty)
    metrics: dict                       # the task's evaluation (the best one, for tasks that select it)
    wall_time: float
    reason: str | None = None           # why a run was infeasible
    history: list = field(default_factory=list)   # (step, loss) pairs, about 100 of them


def history_stride(steps: int) -> int:
    """Record the loss every this many steps (about 100 points a run)."""
    return max(1, steps // 100)


def checkpoint_due(step: int, config: TrainConfig, seconds: float | None, saved_at: float) -> bool:
    """Whether to write a checkpoint after ``step``: every ``config.checkpoint_every`` steps, or, when
    ``seconds`` is given (the study driver's choice), once that long has passed since ``saved_at``."""
    if seconds is not None:
        return time.perf_counter() - saved_at >= seconds
    return step % config.checkpoint_every == 0


def whole_from(config: TrainConfig, task) -> int | None:
    """The first step that trains on the task's whole dataset (``config.full_batch_tail``); None: no such step."""
    if not config.full_batch_tail or config.optimizer == "lbfgs":
        return None
    if not task.fixed_dataset:
        raise RnncapError(f"full_batch_tail needs a task with a fixed dataset; the {task.name} task draws "
                          "new batches: leave it at 0")
    return config.steps - int(round(config.full_batch_tail * config.steps))


def diverged_reason(value: float, first_loss: float, factor: float) -> str | None:
    """Why a run whose loss is ``value`` has diverged, or None: NaN or inf, or ``factor`` times its first loss."""
    if not math.isfinite(value):
        return f"loss became {value}"
    if value > factor * max(first_loss, 1e-8):
        return f"loss {value:.4g} exceeded {factor:g} x its first value {first_loss:.4g}"
    return None


def train(net, task, config: TrainConfig = TrainConfig(), *, checkpoint_path=None, resume: bool = False,
          progress: bool = False, time_limit: float | None = None,
          checkpoint_seconds: float | None = None) -> TrainResult:
    """Train ``net`` on ``task``; see the module docstring. Parameters are updated in place."""
    if config.optimizer == "lbfgs":
        if checkpoint_path is not None:
            raise RnncapError("checkpoints are not supported with --optimizer lbfgs (SciPy owns its state); "
                              "drop --checkpoint or use adam, rmsprop or sgd")
        return train_lbfgs(net, task, config, progress=progress, time_limit=time_limit)

    started = time.perf_counter()
    optimizer = make_optimizer(config.optimizer, config.momentum)
    rng = numpy.random.default_rng(config.seed)
    opt_state = optimizer.init(net.params)
    identity = ckpt.run_identity(net, task, config)
    step, first_loss, best, history, carried, elapsed_before = 0, None, None, [], None, 0.0
    if checkpoint_path is not None:
        saved = ckpt.load_if_resuming(checkpoint_path, resume, identity)
        if saved is not None:
            record = saved.members[0]
            step, elapsed_before = saved.step, saved.elapsed
            first_loss, best, history = record.first_loss, record.best, record.history
            ckpt.restore(saved, net.params, opt_state, [rng])
            carried = ckpt.carried_state(saved, net.xp)

    saved_at = time.perf_counter()

    def save():
        ckpt.save(checkpoint_path, identity, step=step, params=net.params, opt_state=opt_state,
                  members=[ckpt.member_record(rng, first_loss, best, history)], carried=carried,
                  elapsed=elapsed_before + time.perf_counter() - started)

    def diverged(value: float) -> str | None:
        return diverged_reason(value, first_loss, config.diverge_factor)

    # a run resumed after its last step takes none: its loss is the last one recorded
    loss = history[-1][1] if history and history[-1][0] == step else math.nan
    status, reason, last = "done", None, None
    stride, whole = history_stride(config.steps), whole_from(config, task)
    with ProgressBar(progress, config.steps, f"{task.name} {net.cell.name}") as bar:
        while step < config.steps:
            batch = task.whole() if whole is not None and step >= whole else task.batch(step, rng)
            state0 = carried if batch.carry else None
            result = net.loss_and_grads(batch.x, batch.target, batch.mask, task.loss, state0, input_grad=False,
                                        input_steps=task.input_steps)
            carried = result.state                                            # truncated BPTT: no gradient crosses
            grads = result.grads
            loss = result.loss + add_l2(net.params, grads, config.l2)
            if first_loss is None:
                first_loss = loss
            reason = diverged(loss)
            if reason is not None:
                status = "infeasible"
                break
            last = (batch, state0)
            g = flatten({name: grads[name] for name in net.params})             # one vector: clipped in one pass
            clip_by_norm(g, config.clip)
            optimizer.update(net.params, g, opt_state, learning_rate(config.lr, config.lr_decay, step, config.steps,
                                                                          config.lr_schedule))
            step += 1
            if step % stride == 0 or step == config.steps:
                history.append((step, loss))
            if config.eval_every and step % config.eval_every == 0 and task.select_best:
                best = better_of(task, best, task.evaluate(net))
            if checkpoint_path is not None and checkpoint_due(step, config, checkpoint_seconds, saved_at):
                save()
                saved_at = time.perf_counter()
            bar.update(step, f"loss {loss:.4g}")
            if time_limit is not None and time.perf_counter() - started > time_limit:
                break

    if checkpoint_path is not None and status == "done":
        save()                     # before the final evaluation, so a resumed run sees what this one saw
    if status == "done" and last is not None:
        # the last update is checked too: the loss on the last batch, after it
        batch, state0 = last
        value, _ = task.loss(net.forward(batch.x, state0, input_steps=task.input_steps).out, batch.target, batch.mask)
        reason = diverged(float(value) + l2_penalty(net.params, config.l2))
        status = "done" if reason is None else "infeasible"
    metrics = {}
    if status == "done":
        metrics = task.evaluate(net)
        if not _all_finite(net.params):
            status, reason = "infeasible", "parameters became NaN or infinite"
        elif task.select_best:
            metrics = better_of(task, best, metrics)
    return TrainResult(status, step, float(loss), metrics, elapsed_before + time.perf_counter() - started,
                       reason, history)


def better_of(task, best: dict | None, new: dict) -> dict:
    if best is None or task.better(new[task.objective], best[task.objective]):
        return new
    return best


def _all_finite(params: dict) -> bool:
    return all(bool(numpy.isfinite(to_numpy(p)).all()) for p in params.values())


_UPHILL = 1e30   # what L-BFGS sees where the loss is not finite


def train_lbfgs(net, task, config: TrainConfig, *, progress: bool = False,
                time_limit: float | None = None) -> TrainResult:
    """Full-batch L-BFGS (SciPy's L-BFGS-B) with our own gradients as ``jac``.

    The loss and gradients are computed in float64 (a copy of the network), as
    the line search needs them consistent; the result is copied back. Only for
    tasks with one fixed dataset (capacity, rcf). ``config.steps`` bounds the
    L-BFGS iterations.
    """
    import scipy.optimize

    if not task.fixed_dataset:
        raise RnncapError(f"L-BFGS needs a fixed dataset; the {task.name} task draws new batches: "
                          "use --optimizer adam, rmsprop or sgd")
    started = time.perf_counter()
    net64 = net.astype(numpy.float64)
    names = list(net64.params)
    shapes = [net64.params[k].shape for k in names]
    sizes = [int(numpy.prod(s)) for s in shapes]
    batch = task.whole()                                                 # full batch, whatever batch_size says
    history = []

    def unflatten(theta):
        offset = 0
        for k, shape, size in zip(names, shapes, sizes):
            net64.params[k] = net64.xp.asarray(theta[offset:offset + size].reshape(shape))
            offset += size

    def loss_and_flat_grad(theta):
        unflatten(theta)
        result = net64.loss_and_grads(batch.x, batch.target, batch.mask, task.loss, input_grad=False)
        grads = result.grads
        loss = result.loss + add_l2(net64.params, grads, config.l2)
        if not math.isfinite(loss):
            return _UPHILL, numpy.zeros_like(theta)                           # makes the line search back off
        return loss, numpy.concatenate([to_numpy(grads[k]).ravel() for k in names])

    theta0 = numpy.concatenate([to_numpy(net64.params[k]).ravel() for k in names])
    status, reason, iterations = "done", None, [0]
    with ProgressBar(progress, config.steps, f"{task.name} {net.cell.name} (L-BFGS)") as bar:
        def callback(intermediate_result):
            iterations[0] += 1
            if iterations[0] % history_stride(config.steps) == 0:
                history.append((iterations[0], float(intermediate_result.fun)))
            bar.update(iterations[0], f"loss {float(intermediate_result.fun):.4g}")
            if time_limit is not None and time.perf_counter() - started > time_limit:
                raise StopIteration

        opt = scipy.optimize.minimize(loss_and_flat_grad, theta0, jac=True, method="L-BFGS-B", callback=callback,
                                      options={"maxiter": config.steps, "maxfun": 4 * config.steps,
                                               "maxcor": 20, "ftol": 0.0, "gtol": 1e-12})
    theta, loss = opt.x, float(opt.fun)
    if not math.isfinite(loss) or loss >= _UPHILL or not numpy.isfinite(theta).all():
        status, reason, theta = "infeasible", f"L-BFGS ended at loss {loss:.4g}: {opt.message}", theta0
    unflatten(theta)
    for k in names:
        net.params[k][...] = net.xp.asarray(net64.params[k], dtype=net.dtype)
    metrics = task.evaluate(net) if status == "done" else {}
    return TrainResult(status, iterations[0], loss, metrics, time.perf_counter() - started, reason, history)
