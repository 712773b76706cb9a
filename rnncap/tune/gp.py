"""Gaussian-process Bayesian optimisation in the unit cube, in the style of Spearmint: the model.

This module is the mathematics: the kernel, the hyperparameter fit, the
posterior, expected improvement and the feasibility model.
:class:`rnncap.tune.strategies.GPOptimizer` is the search that uses them.

The paper tunes every point with Spearmint (Snoek, Larochelle & Adams 2012):
model the objective ``f(u)`` of the hyperparameters ``u in [0, 1]^d`` with a
Gaussian process, and run next where the *expected improvement* over the best
value so far is largest. Everything here minimises; a caller that maximises
(bits on the capacity task) passes ``-value``.

**The model.** Observed values ``y`` are standardised (zero mean, unit
variance) and modelled as ``y = f(u) + eps``, ``f ~ GP(0, k)``,
``eps ~ N(0, sigma_n^2)``, with the Matérn 5/2 kernel and one length scale
per dimension (ARD):

    r^2(u, u') = sum_i (u_i - u'_i)^2 / l_i^2
    k(u, u')   = s^2 (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r)                (K)

The posterior at a point ``u*``, with ``K = k(U, U) + sigma_n^2 I`` and
``k* = k(U, u*)``:

    mu(u*)      = k*^T K^-1 y                                             (M)
    sigma^2(u*) = s^2 - k*^T K^-1 k*                                      (V)

**Kernel hyperparameters** ``theta = (log l_1..l_d, log s^2, log sigma_n^2)``
maximise the log marginal likelihood plus log-normal priors (a MAP fit;
Spearmint samples them instead, which costs tens of times more):

    log p(y | theta) = -1/2 y^T K^-1 y - 1/2 log|K| - n/2 log 2 pi         (L)
    d log p / d theta_j = 1/2 tr((alpha alpha^T - K^-1) dK/d theta_j),  alpha = K^-1 y

with L-BFGS-B on the log parameters inside bounds (length scales 0.02..20 in
the unit cube: shorter ones would let the GP thread a spike through every
point and predict the prior mean everywhere else), from the previous fit and
a few random starts.

**Expected improvement** over the incumbent ``y_best`` (the best standardised
observation), with ``gamma = (y_best - mu) / sigma``:

    EI(u) = sigma (gamma Phi(gamma) + phi(gamma))                          (EI)
    dEI = -Phi(gamma) dmu + phi(gamma) dsigma

maximised over a few thousand random candidates (uniform, and Gaussian
perturbations of the best points so far), then refined by L-BFGS-B from the
best few with the analytic gradient. With a search space, candidates are
first *projected* onto the points that would actually run (one-hot
categoricals, inactive conditionals at 0.5), so the score is the score of
what gets trained.

**Infeasible trials** (diverged runs) have no objective value. We keep them
out of the objective model and learn a second model of *whether* a point is
feasible; the acquisition is the constrained EI of Gelbart, Snoek & Adams
(2014), ``EI(u) * P(feasible | u)``. The feasibility model is a GP regression
on labels +1 (feasible) / -1 (infeasible), standardised like the objective,
with ``P(feasible | u) = Phi((mu_c(u) - t) / sigma_c(u))`` where ``t`` is the
standardised label 0: the probability that the latent constraint function is
positive (least-squares classification, Rasmussen & Williams section 6.5, in
place of Spearmint's probit GP classifier, whose sampling we skip). Far from
data it tends to ``Phi(m / (sd s_c))`` (``m``, ``sd``: the labels' mean and
standard deviation; ``s_c^2``: the model's signal variance), near the rate
of feasible runs so far. Why not
impute the worst observed value instead? Because a divergence is a cliff, not
a bad value: a stationary GP smooths the imputed cliff into the feasible
neighbourhood, inflates the output variance and shortens the length scales,
and for RNNs the best learning rates often sit right next to the divergence
boundary, exactly where the imputed values would push the search away.

**Parallel workers** get distinct suggestions by the *constant liar*
(Ginsbourger, Le Riche & Carraro 2010): every pending point (running, or
already handed out in this call) joins the objective model with a made-up
value, the "lie", with the hyperparameters kept fixed. The posterior variance
collapses at each pending point, so EI there drops to zero and the next
suggestion goes elsewhere. Pending points join the objective model only; the
feasibility model learns from finished runs. The default lie is the mean of
the observations: ``min`` (optimistic) keeps a batch near the incumbent,
``max`` (pessimistic) pushes it apart; the mean sits between and does not
move the incumbent.

**Speed.** One suggestion with 100 observations in 6 dimensions takes about
0.1-0.2 s with one BLAS thread. The matrices are small, so BLAS threads only
add wake-up latency: on a busy two-core machine, OpenBLAS's default threads
made suggestions 10-20 times slower (the triangular solves of ``cho_solve``
and L-BFGS-B's own LAPACK calls waited milliseconds each for a second core).
:meth:`GPOptimizer.suggest` therefore runs under :func:`one_blas_thread`,
which limits BLAS to one thread with ``threadpoolctl``; that also makes a
study's suggestions the same whatever the machine's BLAS thread count.

**Phases.** The first ``n_initial`` suggestions (``max(3, d + 1)`` by
default, counting pending ones) are uniform draws. Until two feasible values
are in, the model cannot be standardised, so suggestions explore: the random
candidate farthest from every observed and pending point.
"""

from __future__ import annotations

import math

import numpy
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize
from scipy.stats import norm


from threadpoolctl import threadpool_limits

SQRT5 = math.sqrt(5.0)

# bounds of the kernel hyperparameters, in the unit cube and in standardised output units
LENGTHSCALE_BOUNDS = (0.02, 20.0)
SIGNAL_VAR_BOUNDS = (0.01, 100.0)
NOISE_VAR_BOUNDS = (1e-8, 1.0)           # a floor of 1e-6 blurred Hartmann-6's last 5 % away: no seed got there
# log-normal priors (mean of the log, standard deviation of the log). The length scales' is the
# firm one: +-2 sd is 0.04..2.2, a tenth of the cube to nearly flat. With a looser prior (sd 1.5) the
# fit declared a dimension irrelevant on scant evidence (Hartmann-6: l_2 = 3), EI stopped exploring
# it, and 2 of 10 seeds stalled on a boundary at f = -3.08; with this one all 10 reach -3.16.
LENGTHSCALE_PRIOR = (math.log(0.3), 1.0)
SIGNAL_VAR_PRIOR = (0.0, 1.5)
NOISE_VAR_PRIOR = (math.log(1e-3), 3.0)
JITTERS = (0.0, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2)   # added to the diagonal, in turn, until Cholesky succeeds


def one_blas_thread():
    """A context in which BLAS runs on one thread.

    For speed (see **Speed** above) and for reproducibility: a multi-threaded
    BLAS may sum in another order, and the GP's suggestions, fed back into
    its own fits, would drift apart from one machine to the next.
    """
    return threadpool_limits(limits=1, user_api="blas")


# the kernel ----------------------------------------------------------------------------------

def scaled_sq_distances(A: numpy.ndarray, B: numpy.ndarray, lengthscales: numpy.ndarray) -> numpy.ndarray:
    """``r^2`` of (K) between every row of ``A`` (n, d) and of ``B`` (m, d): shape (n, m)."""
    a = A / lengthscales                                              # (n, d)
    b = B / lengthscales                                              # (m, d)
    r2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T   # (n, m)
    return numpy.maximum(r2, 0.0)                                     # rounding can dip below zero


def matern52_parts(r2: numpy.ndarray, signal_var: float):
    """(K) from squared scaled distances ``r2``, with ``r`` and ``exp(-sqrt5 r)``, which its derivatives reuse."""
    r = numpy.sqrt(r2)
    decay = numpy.exp(-SQRT5 * r)
    return signal_var * (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * decay, r, decay


def matern52(A: numpy.ndarray, B: numpy.ndarray, lengthscales: numpy.ndarray, signal_var: float) -> numpy.ndarray:
    """The Matérn 5/2 kernel (K) between the rows of ``A`` and ``B``: shape (n, m)."""
    return matern52_parts(scaled_sq_distances(A, B, lengthscales), signal_var)[0]   # (n, m)


def unpack(theta: numpy.ndarray) -> tuple[numpy.ndarray, float, float]:
    """``theta = (log l_1..l_d, log s^2, log sigma_n^2)`` -> ``(l, s^2, sigma_n^2)``."""
    return numpy.exp(theta[:-2]), float(numpy.exp(theta[-2])), float(numpy.exp(theta[-1]))


def theta_bounds(dim: int) -> list[tuple[float, float]]:
    return ([tuple(map(math.log, LENGTHSCALE_BOUNDS))] * dim
            + [tuple(map(math.log, SIGNAL_VAR_BOUNDS)), tuple(map(math.log, NOISE_VAR_BOUNDS))])


def default_theta(dim: int) -> numpy.ndarray:
    """The prior medians: the start of the first fit."""
    return numpy.array([LENGTHSCALE_PRIOR[0]] * dim + [SIGNAL_VAR_PRIOR[0], NOISE_VAR_PRIOR[0]])   # (d+2,)


def cholesky_with_jitter(K: numpy.ndarray):
    """``cho_factor`` of ``K``, adding the first of :data:`JITTERS` (times the mean diagonal) that works."""
    scale = float(numpy.mean(numpy.diag(K)))
    for jitter in JITTERS:
        try:
            return cho_factor(K + jitter * scale * numpy.eye(len(K)), lower=True)
        except numpy.linalg.LinAlgError:
            continue
    raise numpy.linalg.LinAlgError("the kernel matrix is not positive definite even with jitter")


# the marginal likelihood ------------------------------------------------------------------

def negative_log_marginal_likelihood(theta: numpy.ndarray, X: numpy.ndarray, y: numpy.ndarray):
    """``-log p(y | theta)`` of (L) and its gradient with respect to ``theta``.

    With ``W = K^-1 - alpha alpha^T`` the gradient is ``1/2 tr(W dK/dtheta_j)``:

        dK/d log s^2       = K_f   (the noise-free part of K)
        dK/d log sigma_n^2 = sigma_n^2 I
        dK/d log l_i       = 5/3 s^2 (1 + sqrt5 r) exp(-sqrt5 r) (u_i - u'_i)^2 / l_i^2
    """
    n, d = X.shape
    lengthscales, signal_var, noise_var = unpack(theta)
    K_f, r, decay = matern52_parts(scaled_sq_distances(X, X, lengthscales), signal_var)   # (K) (n, n) each
    factor = cholesky_with_jitter(K_f + noise_var * numpy.eye(n))
    alpha = cho_solve(factor, y)                                      # K^-1 y  (n,)
    log_det = 2.0 * numpy.log(numpy.diag(factor[0])).sum()
    value = 0.5 * y @ alpha + 0.5 * log_det + 0.5 * n * math.log(2.0 * math.pi)   # -(L)

    W = cho_solve(factor, numpy.eye(n)) - numpy.outer(alpha, alpha)  # (n, n)
    grad = numpy.empty(d + 2)                                         # (d+2,)
    grad[d] = 0.5 * (W * K_f).sum()                                   # log s^2
    grad[d + 1] = 0.5 * noise_var * numpy.trace(W)                    # log sigma_n^2
    # sum_ab G_ab (x_ai - x_bi)^2 = 2 sum_a x_ai^2 sum_b G_ab - 2 x_i^T G x_i for symmetric G
    G = W * (5.0 / 3.0) * signal_var * (1.0 + SQRT5 * r) * decay     # (n, n)
    row_sums = G.sum(1)                                               # (n,)
    quadratic = ((X * X) * row_sums[:, None]).sum(0) - (X * (G @ X)).sum(0)   # (d,)
    grad[:d] = quadratic / lengthscales**2                            # log l_i
    return value, grad


def negative_log_prior(theta: numpy.ndarray):
    """``-log p(theta)`` (up to a constant) of the log-normal priors, and its gradient."""
    d = len(theta) - 2
    means = numpy.array([LENGTHSCALE_PRIOR[0]] * d + [SIGNAL_VAR_PRIOR[0], NOISE_VAR_PRIOR[0]])   # (d+2,)
    stds = numpy.array([LENGTHSCALE_PRIOR[1]] * d + [SIGNAL_VAR_PRIOR[1], NOISE_VAR_PRIOR[1]])    # (d+2,)
    z = (theta - means) / stds                                        # (d+2,)
    return 0.5 * float(z @ z), z / stds


def fit_hyperparameters(X: numpy.ndarray, y: numpy.ndarray, rng: numpy.random.Generator, *,
                        start: numpy.ndarray | None = None, restarts: int = 2, maxiter: int = 100) -> numpy.ndarray:
    """The MAP ``theta``: L-BFGS-B from ``start`` (or the prior medians) and ``restarts`` prior draws."""
    d = X.shape[1]
    bounds = theta_bounds(d)
    low, high = numpy.array(bounds).T                                 # (d+2,) each

    def objective(theta):
        try:
            nlml, grad = negative_log_marginal_likelihood(theta, X, y)
        except numpy.linalg.LinAlgError:
            return 1e25, numpy.zeros_like(theta)
        prior, prior_grad = negative_log_prior(theta)
        return nlml + prior, grad + prior_grad

    means, stds = default_theta(d), numpy.array([LENGTHSCALE_PRIOR[1]] * d + [SIGNAL_VAR_PRIOR[1], 1.0])
    starts = [default_theta(d) if start is None else start]
    starts += [numpy.clip(means + stds * rng.standard_normal(d + 2), low, high) for _ in range(restarts)]
    best_theta, best_value = numpy.clip(starts[0], low, high), math.inf
    for theta0 in starts:
        result = minimize(objective, numpy.clip(theta0, low, high), jac=True, method="L-BFGS-B", bounds=bounds,
                          options={"maxiter": maxiter})
        if numpy.isfinite(result.fun) and result.fun < best_value:
            best_theta, best_value = result.x, float(result.fun)
    return best_theta


class GaussianProcess:
    """A GP with fixed hyperparameters ``theta``, conditioned on inputs ``X`` (n, d) and outputs ``y`` (n,)."""

    def __init__(self, X: numpy.ndarray, y: numpy.ndarray, theta: numpy.ndarray):
        self.X = numpy.asarray(X, dtype=float)                        # (n, d)
        self.y = numpy.asarray(y, dtype=float)                        # (n,)
        self.theta = numpy.asarray(theta, dtype=float)                # (d+2,)
        self.lengthscales, self.signal_var, self.noise_var = unpack(self.theta)
        K = matern52(self.X, self.X, self.lengthscales, self.signal_var) + self.noise_var * numpy.eye(len(self.X))
        self.factor = cholesky_with_jitter(K)
        self.alpha = cho_solve(self.factor, self.y)                   # K^-1 y  (n,)

    def predict(self, Xs: numpy.ndarray) -> tuple[numpy.ndarray, numpy.ndarray]:
        """Posterior mean (M) and variance (V) of ``f`` (no noise) at the rows of ``Xs``."""
        k_star = matern52(self.X, Xs, self.lengthscales, self.signal_var)   # (n, m)
        mean = k_star.T @ self.alpha                                  # (M) (m,)
        v = cho_solve(self.factor, k_star)                            # K^-1 k*  (n, m)
        var = self.signal_var - (k_star * v).sum(0)                   # (V) (m,)
        return mean, numpy.maximum(var, 0.0)

    def predict_with_gradient(self, x: numpy.ndarray):
        """Mean, variance and their gradients with respect to the single point ``x`` (d,).

        ``dk(x, u_j)/dx = -5/3 s^2 (1 + sqrt5 r_j) exp(-sqrt5 r_j) (x - u_j) / l^2``,
        so ``dmu = dk^T alpha`` and ``dsigma^2 = -2 dk^T K^-1 k``.
        """
        diff = x[None, :] - self.X                                    # (n, d)
        k, r, decay = matern52_parts(((diff / self.lengthscales) ** 2).sum(1), self.signal_var)   # (K) (n,) each
        dk_dr2 = -(5.0 / 6.0) * self.signal_var * (1.0 + SQRT5 * r) * decay   # dk / d(r^2)  (n,)
        dk = 2.0 * dk_dr2[:, None] * diff / self.lengthscales**2     # (n, d)
        v = cho_solve(self.factor, k)                                 # K^-1 k  (n,)
        mean, dmean = k @ self.alpha, dk.T @ self.alpha               # (M), (d,)
        var, dvar = self.signal_var - k @ v, -2.0 * dk.T @ v          # (V), (d,)
        return float(mean), max(float(var), 0.0), dmean, dvar


# the acquisition ---------------------------------------------------------------------------

MIN_STD = 1e-12


def expected_improvement(mean, var, best):
    """(EI) for minimisation, elementwise; ``max(best - mean, 0)`` where the variance is zero."""
    mean, std = numpy.asarray(mean, dtype=float), numpy.sqrt(numpy.asarray(var, dtype=float))
    safe_std = numpy.maximum(std, MIN_STD)
    gamma = (best - mean) / safe_std
    ei = safe_std * (gamma * norm.cdf(gamma) + norm.pdf(gamma))
    return numpy.where(std > MIN_STD, numpy.maximum(ei, 0.0), numpy.maximum(best - mean, 0.0))


def expected_improvement_with_gradient(mean, var, dmean, dvar, best):
    """(EI) at one point and its gradient, from the posterior's value and gradient there."""
    std = math.sqrt(max(var, MIN_STD**2))
    dstd = dvar / (2.0 * std)                                         # (d,)
    gamma = (best - mean) / std
    cdf, pdf = norm.cdf(gamma), norm.pdf(gamma)
    return std * (gamma * cdf + pdf), -cdf * dmean + pdf * dstd


class FeasibilityModel:
    """``P(feasible | u) = Phi((mu_c(u) - t) / sigma_c(u))`` from a GP on standardised +-1 labels."""

    def __init__(self, X: numpy.ndarray, feasible: numpy.ndarray, rng: numpy.random.Generator,
                 start: numpy.ndarray | None = None, restarts: int = 1):
        labels = numpy.where(feasible, 1.0, -1.0)                     # (n,)
        self.label_mean, self.label_std = labels.mean(), labels.std()
        y = (labels - self.label_mean) / self.label_std               # (n,)
        self.threshold = -self.label_mean / self.label_std            # label 0, standardised
        self.theta = fit_hyperparameters(X, y, rng, start=start, restarts=restarts)
        self.gp = GaussianProcess(X, y, self.theta)

    def probability(self, Xs: numpy.ndarray) -> numpy.ndarray:
        mean, var = self.gp.predict(Xs)
        return norm.cdf((mean - self.threshold) / numpy.sqrt(numpy.maximum(var, MIN_STD**2)))   # (m,)

    def probability_with_gradient(self, x: numpy.ndarray):
        mean, var, dmean, dvar = self.gp.predict_with_gradient(x)
        std = math.sqrt(max(var, MIN_STD**2))
        z = (mean - self.threshold) / std
        dz = dmean / std - (mean - self.threshold) * dvar / (2.0 * std**3)   # (d,)
        return float(norm.cdf(z)), norm.pdf(z) * dz
