"""Laplace: exact on Bayesian linear regression, GGN against brute force, every prediction path.

Ground truth (float64): for ``nn.Linear`` with a Gaussian likelihood of fixed noise and a
``Normal(0, s)`` prior, the posterior is N(μ, A⁻¹) with A = ΦᵀΦ/σ² + I/s², μ = A⁻¹Φᵀy/σ²
(Φ = [x, 1]) and the evidence is y ~ N(0, σ²I + s²ΦΦᵀ).
"""

import math

import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide import AutoDelta
from scipy.optimize import minimize, minimize_scalar
from torch import nn
from torch.func import functional_call, jacrev

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian
from pyro_bdl.likelihoods import Bernoulli
from pyro_bdl.posteriors.laplace import Laplace, map_to_net
from pyro_bdl.priors import ScaleMixturePrior
from pyro_bdl.workflows.teachers import teacher_targets

N, D, SIGMA, S = 30, 3, 0.5, 2.0


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3 + SIGMA * torch.randn(N, generator=g)
    return x, y


def _closed_form(x, y, lam, sigma):
    phi = torch.cat([x, torch.ones(len(x), 1)], 1)
    a = phi.T @ phi / sigma**2 + lam * torch.eye(phi.shape[1])
    mu = torch.linalg.solve(a, phi.T @ y / sigma**2)
    return phi, a, mu


def _evidence(phi, y, lam, sigma):
    cov = sigma**2 * torch.eye(len(y)) + phi @ phi.T / lam
    return dist.MultivariateNormal(torch.zeros(len(y)), cov).log_prob(y)


def _linear_bnn(mu, scale=SIGMA, learned=False):
    net = nn.Linear(D, 1)
    with torch.no_grad():
        net.weight.copy_(mu[:D].reshape(1, D))
        net.bias.copy_(mu[D:])
    lik = HomoskedasticGaussian(None, init_scale=scale) if learned else HomoskedasticGaussian(scale)
    return BNN(net, dist.Normal(0.0, S), lik)


def _fitted_linear(hessian="full", learned=False):
    x, y = _data()
    phi, a, mu = _closed_form(x, y, 1 / S**2, SIGMA)
    bnn = _linear_bnn(mu, learned=learned)
    return bnn, Laplace(bnn, hessian=hessian).fit(x, y), (x, y, phi, a, mu)


def test_full_is_exact_on_linear_regression():
    _, lap, (x, y, phi, a, mu) = _fitted_linear("full")
    assert torch.allclose(lap.mean, mu, atol=1e-8, rtol=0)
    assert torch.allclose(lap.posterior_covariance, torch.linalg.inv(a), atol=1e-8, rtol=0)
    exact = _evidence(phi, y, 1 / S**2, SIGMA)
    assert abs(float(lap.log_marginal_likelihood() - exact)) < 1e-8


def test_diag_is_the_diagonal_of_the_exact_precision():
    _, lap, (_, _, _, a, mu) = _fitted_linear("diag")
    assert torch.allclose(lap.posterior_precision, a.diagonal(), atol=1e-8, rtol=0)
    assert torch.allclose(lap.mean, mu, atol=1e-8, rtol=0)


@pytest.mark.parametrize("lam,sigma", [(0.05, 0.5), (3.0, 0.5), (0.25, 0.2), (10.0, 2.0)])
def test_evidence_is_exact_at_other_hyperparameters(lam, sigma):
    """The quadratic expansion around the MAP of (1/s², σ₀) is exact for a linear model: the
    evidence and the moved posterior mean at any (λ, σ) are the closed form's."""
    _, lap, (x, y, phi, _, _) = _fitted_linear("full", learned=True)
    got = lap.log_marginal_likelihood(lam, sigma)
    assert abs(float(got - _evidence(phi, y, lam, sigma))) < 1e-8
    lap.prior_precision = lam  # the posterior follows its hyperparameters
    _, a, mu = _closed_form(x, y, lam, SIGMA)
    assert torch.allclose(lap.mean, mu, atol=1e-8, rtol=0)
    assert torch.allclose(lap.posterior_precision, a, atol=1e-8, rtol=0)
    with torch.no_grad():  # and the likelihood's learned noise
        lap.bnn.likelihood.scale_unconstrained.copy_(torch.tensor(sigma).log())
    _, a, mu = _closed_form(x, y, lam, sigma)
    assert torch.allclose(lap.mean, mu, atol=1e-8, rtol=0)
    assert torch.allclose(lap.posterior_precision, a, atol=1e-8, rtol=0)
    assert abs(float(lap.log_marginal_likelihood() - _evidence(phi, y, lam, sigma))) < 1e-8


def test_optimize_prior_reaches_the_evidence_maximiser():
    _, lap, (_, y, phi, _, _) = _fitted_linear("full")
    best = minimize_scalar(
        lambda t: -float(_evidence(phi, y, math.exp(t), SIGMA)), bracket=(-3, 0), tol=1e-12
    )
    lap.optimize_prior()
    # Adam with a decaying rate: within 1e-3 relative of the closed-form optimum
    assert lap.prior_precision.shape == (2,)
    assert torch.allclose(lap.prior_precision, torch.tensor(math.exp(best.x)).expand(2), rtol=1e-3)


def test_optimize_prior_tunes_noise_and_writes_it_into_the_likelihood():
    bnn, lap, (x, _, phi, _, _) = _fitted_linear("full", learned=True)
    y = _data()[1]

    def neg(v):
        return -float(_evidence(phi, y, math.exp(v[0]), math.exp(v[1])))

    best = minimize(neg, [0.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12})
    lap.optimize_prior(steps=1000)
    lam_opt, sigma_opt = math.exp(best.x[0]), math.exp(best.x[1])
    assert abs(float(lap.prior_precision[0]) / lam_opt - 1) < 1e-3
    sigma = float(bnn.likelihood.noise_scale(x).detach())
    assert abs(sigma / sigma_opt - 1) < 1e-3
    assert bnn.predict(x[:2], 3, posterior=lap).scale[0, 0].item() == pytest.approx(sigma)


def test_optimize_prior_refuses_a_fixed_noise():
    _, lap, _ = _fitted_linear("full")
    with pytest.raises(ValueError, match="learned scale"):
        lap.optimize_prior(noise=True)


def test_mc_predictive_matches_the_glm_predictive_of_a_linear_net():
    bnn, lap, (x, *_) = _fitted_linear("full")
    xt = torch.randn(5, D)
    mc = bnn.predict(xt, 40000, posterior=lap, seed=1)
    glm = lap.predict_glm(xt)
    g, m = glm.decompose(), mc.decompose()
    # exact for a linear net: mean within 4 MC standard errors, epistemic variance within 3 %
    se = (g.epistemic / 40000).sqrt()
    assert ((mc.mean - glm.mean).abs() < 4 * se).all()
    assert torch.allclose(m.epistemic, g.epistemic, rtol=0.03)
    # the GLM decomposition is exact: epistemic = diag(J Σ Jᵀ), aleatoric = σ²
    phi = torch.cat([xt, torch.ones(5, 1)], 1)
    var = ((phi @ lap.posterior_covariance) * phi).sum(-1)
    assert torch.allclose(g.epistemic, var, atol=1e-12, rtol=0)
    assert torch.allclose(g.aleatoric, torch.full((5,), SIGMA**2), atol=1e-12, rtol=0)
    assert torch.allclose(glm.mean, phi @ lap.mean, atol=1e-12, rtol=0)
    assert torch.allclose(g.total, g.aleatoric + g.epistemic, atol=0, rtol=1e-15)
    assert torch.allclose(m.total, m.aleatoric + m.epistemic, atol=0, rtol=1e-15)


def _mlp_classifier(subset_include=None, classes=3):
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, classes))
    bnn = BNN(net, dist.Normal(0.0, 1.0), Categorical(), include=subset_include)
    x = torch.randn(12, 2)
    y = torch.randint(0, classes, (12,))
    return bnn, x, y


def _brute_ggn(bnn, names, x, hess):
    """Σ_n J_nᵀ H_n J_n from the Jacobian of the whole batch (torch.func.jacrev)."""
    net = bnn.net
    params = dict(net.named_parameters())
    theta = torch.cat([params[n].detach().reshape(-1) for n in names])
    sizes = [params[n].numel() for n in names]

    def f(t):
        split = dict(zip(names, t.split(sizes), strict=True))
        ps = {n: v.reshape(params[n].shape) for n, v in split.items()}
        return functional_call(net, ps, (x,))

    out = f(theta).detach()
    jac = jacrev(f)(theta)  # (N, K, d)
    return torch.einsum("nkp,nkl,nlq->pq", jac, hess(out), jac)


@pytest.mark.parametrize("hessian", ["full", "diag"])
def test_categorical_ggn_matches_brute_force(hessian):
    bnn, x, y = _mlp_classifier()
    lap = Laplace(bnn, hessian=hessian, prior_precision=2.0).fit(x, y)

    def hess(out):
        p = out.softmax(-1)
        return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)

    ggn = _brute_ggn(bnn, lap.names, x, hess) + 2.0 * torch.eye(lap.mean.numel())
    want = ggn if hessian == "full" else ggn.diagonal()
    assert torch.allclose(lap.posterior_precision, want, atol=1e-10, rtol=0)


def test_bernoulli_ggn_matches_brute_force():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), Bernoulli())
    x = torch.randn(10, 2)
    y = (torch.rand(10) < 0.5).double()
    lap = Laplace(bnn).fit(x, y)

    def hess(out):
        p = out.sigmoid()
        return torch.diag_embed(p * (1 - p))

    want = _brute_ggn(bnn, lap.names, x, hess) + torch.eye(lap.mean.numel())
    assert torch.allclose(lap.posterior_precision, want, atol=1e-10, rtol=0)


def test_last_layer_subset_holds_the_other_sites_at_the_map():
    bnn, x, y = _mlp_classifier()
    lap = Laplace(bnn, subset="last_layer").fit(x, y)
    assert lap.names == ["2.weight", "2.bias"]
    draws = lap.sample(7).sites
    assert list(draws) == bnn.bayesian_model.site_names
    assert torch.equal(draws["0.weight"], bnn.net[0].weight.detach().expand(7, 4, 2))
    assert draws["2.weight"].shape == (7, 3, 4) and draws["2.weight"].std(0).min() > 0
    # the same Laplace as a BNN whose random sites are the last layer only
    last = BNN(bnn.net, dist.Normal(0.0, 1.0), Categorical(), include=lambda n, p: n[0] == "2")
    other = Laplace(last, subset="all").fit(x, y)
    assert torch.allclose(other.posterior_precision, lap.posterior_precision, atol=1e-12)
    assert list(other.sample(2).sites) == ["2.weight", "2.bias"]


def test_subset_outside_the_weight_sites_is_refused():
    bnn, _, _ = _mlp_classifier(subset_include=lambda n, p: n.startswith("2."))
    with pytest.raises(ValueError, match="deterministic"):
        Laplace(bnn, subset=lambda n, p: n.startswith("0."))


def test_unsupported_prior_and_likelihood_are_refused():
    net = nn.Linear(2, 1)
    bnn = BNN(net, ScaleMixturePrior(0.5, 1.0, 0.1), HomoskedasticGaussian(0.1))
    with pytest.raises(ValueError, match="isotropic Normal"):
        Laplace(bnn)
    assert Laplace(bnn, prior_precision=4.0).prior_precision.tolist() == [4.0, 4.0]
    lik = HomoskedasticGaussian(precision_prior=dist.Gamma(1.0, 1.0))
    with pytest.raises(ValueError, match="precision prior"):
        Laplace(BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), lik))


def test_kron_refuses_other_layers():
    net = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1))
    with pytest.raises(ValueError, match="Conv1d"):
        Laplace(bnn, hessian="kron")
    grouped = nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.Flatten(), nn.Linear(2, 1))
    with pytest.raises(ValueError, match="groups=1"):
        Laplace(BNN(grouped, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1)), hessian="kron")


def _conv_classifier(kernel):
    torch.manual_seed(5)
    conv = nn.Conv2d(2, 3, kernel, padding=0)
    side = 4 - kernel  # positions per side: 4 - kernel + 1
    net = nn.Sequential(conv, nn.Tanh(), nn.Flatten(), nn.Linear(3 * (side + 1) ** 2, 2))
    bnn = BNN(net, dist.Normal(0.0, 1.0), Categorical())
    x = torch.randn(6, 2, 4, 4)
    y = torch.randint(0, 2, (6,))
    return bnn, x, y


def _softmax_hess(out):
    p = out.softmax(-1)
    return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)


def test_kron_conv2d_with_one_position_is_exact_for_one_example():
    bnn, x, y = _conv_classifier(kernel=4)  # the kernel covers the image: a Linear layer
    kron = Laplace(bnn, hessian="kron", subset=["0.weight", "0.bias"]).fit(x[:1], y[:1])
    full = Laplace(bnn, hessian="full", subset=["0.weight", "0.bias"]).fit(x[:1], y[:1])
    d = kron.sizes[0]
    pk, pf = kron.posterior_precision, full.posterior_precision
    assert torch.allclose(pk[:d, :d], pf[:d, :d], atol=1e-10)
    assert torch.allclose(pk[d:, d:], pf[d:, d:], atol=1e-10)


def test_kron_conv2d_matches_the_kfc_form_of_a_brute_force_ggn():
    """KFC (Grosse & Martens 2016): weight block (1/T Σ_n Σ_t Σ_kl g_ntk H_kl g_ntlᵀ) ⊗
    (1/N Σ_n Σ_t a_nt a_ntᵀ), with a_nt the input patch at output position t (built here with
    explicit loops) and g_nt = ∂f/∂(conv output at t) (jacrev of the rest of the net); the bias
    block is the exact GGN block."""
    bnn, x, y = _conv_classifier(kernel=2)
    lam = 0.5
    lap = Laplace(bnn, hessian="kron", prior_precision=lam).fit(x, y)
    conv, head = bnn.net[0], bnn.net[1:]
    z = conv(x).detach()  # (N, 3, 3, 3)
    out = head(z).detach()
    g = jacrev(lambda zz: head(zz))(z)  # (N, K, N, 3, 3, 3)
    g = torch.stack([g[n, :, n] for n in range(len(x))]).reshape(len(x), 2, 3, 9)
    patches = torch.stack(
        [
            torch.stack([x[:, :, i : i + 2, j : j + 2].reshape(len(x), -1) for j in range(3)], -1)
            for i in range(3)
        ],
        -2,
    ).reshape(len(x), 8, 9)  # (N, C·kh·kw, T), positions row-major
    h = _softmax_hess(out)
    g_kfc = torch.einsum("nkot,nkl,nlpt->op", g, h, g) / 9
    a_kfc = torch.einsum("nit,njt->ij", patches, patches) / len(x)
    d = lap.sizes[0]
    prec = lap.posterior_precision
    assert torch.allclose(
        prec[:d, :d],
        torch.kron(g_kfc.contiguous(), a_kfc.contiguous()) + lam * torch.eye(d),
        atol=1e-10,
    )
    bias = _brute_ggn(bnn, ["0.bias"], x, _softmax_hess) + lam * torch.eye(3)
    assert torch.allclose(prec[d : d + 3, d : d + 3], bias, atol=1e-10)
    cov = lap.posterior_covariance
    assert torch.allclose(cov @ prec, torch.eye(len(cov)), atol=1e-8)


def test_map_to_net_copies_the_autodelta_estimate():
    x, y = _data()
    bnn = BNN(nn.Linear(D, 1), dist.Normal(0.0, S), HomoskedasticGaussian(SIGMA), guide=AutoDelta)
    bnn.fit(x, y, epochs=300, lr=0.05, progress=False)
    map_to_net(bnn, x)
    _, _, mu = _closed_form(x, y, 1 / S**2, SIGMA)
    assert torch.allclose(bnn.net.weight.detach().reshape(-1), mu[:D], atol=1e-4)
    lap = Laplace(bnn).fit(x, y)
    assert torch.allclose(lap.mean, mu, atol=1e-4)
    with pytest.raises(TypeError, match="AutoDelta"):
        map_to_net(BNN(nn.Linear(D, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1)), x)


def test_dataloader_fit_equals_tensor_fit():
    _, lap, (x, y, *_) = _fitted_linear("full")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=7)
    other = Laplace(lap.bnn).fit(loader)
    assert torch.allclose(other.posterior_precision, lap.posterior_precision, atol=1e-12)
    assert abs(float(other.log_marginal_likelihood() - lap.log_marginal_likelihood())) < 1e-10


@pytest.mark.parametrize("hessian", ["full", "diag"])
def test_predict_decompose_and_teacher_targets_with_posterior_lap(hessian):
    bnn, x, y = _mlp_classifier()
    lap = Laplace(bnn, hessian=hessian).fit(x, y)
    pred = bnn.predict(x, 50, posterior=lap, seed=0)
    parts = pred.decompose()
    assert torch.allclose(parts.total, parts.aleatoric + parts.epistemic, atol=1e-15, rtol=0)
    assert (parts.epistemic > 0).all()
    soft = teacher_targets(bnn, x, 1.0, num_samples=50, seed=0, posterior=lap)
    assert torch.allclose(soft, pred.probs, atol=1e-12, rtol=0)
    glm = lap.predict_glm(x, num_samples=30)
    assert glm.samples.shape == (30, 12, 3)
    probit = lap.predict_glm(x, link="probit")
    assert torch.allclose(probit.probs.sum(-1), torch.ones(12))


@pytest.mark.parametrize("hessian", ["full", "diag"])
def test_state_round_trip_predicts_bitwise_equal(hessian):
    bnn, x, y = _mlp_classifier()
    lap = Laplace(bnn, hessian=hessian, subset="last_layer").fit(x, y)
    lap.optimize_prior(per_layer=True, steps=20)
    config, tensors = lap.to_state()
    assert config["type"] == "Laplace"
    import json

    back = Laplace.from_state(json.loads(json.dumps(config)), tensors, bnn)
    a = bnn.predict(x, 20, posterior=lap, seed=5).samples
    b = bnn.predict(x, 20, posterior=back, seed=5).samples
    assert torch.equal(a, b)
    assert torch.equal(lap.log_marginal_likelihood(), back.log_marginal_likelihood())


def test_kron_equals_the_exact_ggn_for_one_example_and_one_output():
    x, y = _data()
    net = nn.Linear(D, 1, bias=False)
    bnn = BNN(net, dist.Normal(0.0, S), HomoskedasticGaussian(SIGMA))
    kron = Laplace(bnn, hessian="kron").fit(x[:1], y[:1])
    full = Laplace(bnn, hessian="full").fit(x[:1], y[:1])
    assert torch.allclose(kron.posterior_precision, full.posterior_precision, atol=1e-12)
    assert torch.allclose(
        kron.posterior_precision, x[:1].T @ x[:1] / SIGMA**2 + torch.eye(D) / S**2
    )
    assert abs(float(kron.log_marginal_likelihood() - full.log_marginal_likelihood())) < 1e-10


def test_kron_blocks_match_the_brute_force_ggn_in_kronecker_form():
    """Per example, the exact GGN block of a Linear weight is G_n ⊗ a_n a_nᵀ (jacrev); KFAC is
    (Σ_n G_n) ⊗ (1/N Σ_n a_n a_nᵀ): the sum over the data on G, the mean on A (the convention
    of Laplace.fit). Bias blocks are Σ_n G_n, exact."""
    bnn, x, y = _mlp_classifier()
    lam = 0.5
    lap = Laplace(bnn, hessian="kron", prior_precision=lam).fit(x, y)
    net = bnn.net

    def hess(out):
        p = out.softmax(-1)
        return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)

    prec = lap.posterior_precision
    offsets = dict(zip(lap.names, torch.tensor([0] + lap.sizes).cumsum(0).tolist(), strict=False))
    for layer, inp in (("0", x), ("2", torch.tanh(x @ net[0].weight.T + net[0].bias))):
        w, b = f"{layer}.weight", f"{layer}.bias"
        out_f, in_f = lap.shapes[w]
        g_sum = torch.zeros(out_f, out_f)
        a_mean = torch.zeros(in_f, in_f)
        for n in range(len(x)):
            block = _brute_ggn(bnn, [w], x[n : n + 1], hess).reshape(out_f, in_f, out_f, in_f)
            a = inp[n].detach()
            g_n = torch.einsum("oipi->op", block) / (a @ a)
            assert torch.allclose(block, torch.einsum("op,ij->oipj", g_n, torch.outer(a, a)))
            g_sum += g_n
            a_mean += torch.outer(a, a) / len(x)
        dw, db = lap.sizes[lap.names.index(w)], lap.sizes[lap.names.index(b)]
        ow, ob = offsets[w], offsets[b]
        want_w = torch.kron(g_sum, a_mean) + lam * torch.eye(dw)
        assert torch.allclose(prec[ow : ow + dw, ow : ow + dw], want_w, atol=1e-10)
        bias = _brute_ggn(bnn, [b], x, hess) + lam * torch.eye(db)
        assert torch.allclose(prec[ob : ob + db, ob : ob + db], bias, atol=1e-10)
        assert torch.allclose(bias - lam * torch.eye(db), g_sum, atol=1e-10)
        assert (prec[ow : ow + dw, ob : ob + db] == 0).all()


def test_kron_predicts_samples_and_round_trips():
    bnn, x, y = _mlp_classifier()
    lap = Laplace(bnn, hessian="kron").fit(x, y)
    cov = lap.posterior_covariance
    assert torch.allclose(cov @ lap.posterior_precision, torch.eye(len(cov)), atol=1e-8)
    draws = lap.sample(20000).sites
    flat = torch.cat([draws[n].reshape(20000, -1) for n in lap.names], 1)
    assert torch.allclose(flat.var(0), cov.diagonal(), rtol=0.05)
    lap.optimize_prior(per_layer=True, steps=20)
    config, tensors = lap.to_state()
    back = Laplace.from_state(config, tensors, bnn)
    a = bnn.predict(x, 10, posterior=lap, seed=2).samples
    assert torch.equal(a, bnn.predict(x, 10, posterior=back, seed=2).samples)
    glm = lap.predict_glm(x, num_samples=10)
    assert glm.samples.shape == (10, 12, 3)
    jac = torch.cat(
        [
            jacrev(lambda p, n=n: functional_call(bnn.net, {n: p}, (x,)))(bnn.net.get_parameter(n))
            .detach()
            .reshape(12, 3, -1)
            for n in lap.names
        ],
        -1,
    )
    _, cov_f = lap.glm_moments(x)
    assert torch.allclose(cov_f, jac @ back.posterior_covariance @ jac.transpose(1, 2), atol=1e-10)


def test_prior_precision_per_tensor_from_the_prior_and_errors():
    from pyro_bdl.priors import LayerwiseNormalPrior

    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
    bnn = BNN(net, LayerwiseNormalPrior("radford"), HomoskedasticGaussian(0.1))
    lap = Laplace(bnn, hessian="diag")
    assert lap.prior_precision.tolist() == pytest.approx([4.0, 3.0, 3.0, 1.0])  # fan_in
    with pytest.raises(ValueError, match="prior precision > 0"):
        lap.prior_precision = -1.0
    with pytest.raises(RuntimeError, match="fit"):
        lap.sample(2)
    with pytest.raises(ValueError, match="hessian"):
        Laplace(bnn, hessian="lowrank")
    with pytest.raises(ValueError, match="unknown"):
        Laplace(bnn, subset=["9.weight"])
    with pytest.raises(ValueError, match="y=None"):
        lap.fit(torch.zeros(3, 4))


def test_glm_mc_draws_are_seeded():
    bnn, x, y = _mlp_classifier()
    lap = Laplace(bnn, hessian="diag").fit(x, y)
    a = lap.predict_glm(x, num_samples=4000, seed=3)
    b = lap.predict_glm(x, num_samples=4000, seed=3)
    assert torch.equal(a.samples, b.samples)
    # the MC link averages softmax over the Gaussian; the probit approximation is close to it
    probit = lap.predict_glm(x, link="probit")
    assert torch.allclose(a.probs, probit.probs, atol=0.03)


@pytest.mark.parametrize("hessian", ["full", "diag", "kron"])
def test_runs_on_the_network_device(device, hessian):
    x, y = _data()
    _, _, mu = _closed_form(x, y, 1 / S**2, SIGMA)
    cpu = Laplace(_linear_bnn(mu), hessian=hessian).fit(x, y)
    bnn = _linear_bnn(mu)
    bnn.net.to(device)
    lap = Laplace(bnn, hessian=hessian).fit(x.to(device), y.to(device))
    assert torch.allclose(lap.mean.cpu(), cpu.mean, atol=1e-10)
    lml = lap.log_marginal_likelihood().cpu()
    assert torch.allclose(lml, cpu.log_marginal_likelihood(), atol=1e-8)
    pred = bnn.predict(x.to(device), 10, posterior=lap, seed=0)
    assert pred.samples.device.type == device.type
    assert lap.predict_glm(x.to(device)).mean.device.type == device.type
