"""Pruning vs independent references: numpy forward passes with zeroed channels,
forward hooks that zero a layer's output channels, brute-force magnitude ranks,
closed-form MAC counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

import models
from mapping.graph import trace
from mapping.passes import lower, prepare
from mapping.passes.prune import (
    ChannelPlan,
    PruneError,
    apply_plan,
    magnitude_keep,
    mask_channels,
    plan_channels,
    prunable_layers,
    prune_channels,
    prune_graph,
    prune_magnitude,
    weight_sparsity,
)
from mapping.passes.prune_budget import prune_to_macs
from models.finetune import finetune
from sim import golden


def _np(model) -> dict[str, np.ndarray]:
    return {k: v.detach().double().numpy().copy() for k, v in model.state_dict().items()}


def _out(model, x) -> np.ndarray:
    with torch.no_grad():
        return model.double()(torch.as_tensor(np.asarray(x, np.float64))).numpy()


def _ranked_keep(w: np.ndarray, n_keep: int, norm: str = "l2") -> np.ndarray:
    """Reference ranking: the n_keep rows/filters of largest norm (ties: lower index)."""
    flat = np.abs(w.reshape(len(w), -1))
    score = flat.sum(1) if norm == "l1" else np.sqrt((flat ** 2).sum(1))
    chosen = sorted(range(len(w)), key=lambda i: (-score[i], i))[:n_keep]
    return np.array(sorted(chosen))


def _conv(x, w, b, pad):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, w.shape[2:], axis=(2, 3))
    return np.einsum("ncpqrs,kcrs->nkpq", win, w) + b[None, :, None, None]


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def mlp():
    e = models.get("mlp-digits")
    return e, e.load(), e.example_input()


@pytest.fixture(scope="module")
def cnn():
    e = models.get("cnn-digits")
    return e, e.load(), e.example_input()


# ---------------------------------------------------------------- analysis
def test_prunable_layers_of_the_zoo(mlp, cnn):
    assert prunable_layers(mlp[1], mlp[2]) == {
        "fc1": "prunable", "fc2": "prunable", "fc3": "it produces the model output"}
    assert prunable_layers(cnn[1], cnn[2])["conv2"] == "prunable"
    e = models.get("resnet-block")
    r = prunable_layers(e.load(), e.example_input())
    assert r["conv1"] == "prunable" and "several tensor inputs" in r["conv2"]


# ------------------------------------------------------------ equivalence
@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_mlp_pruned_equals_zeroed_numpy_reference(mlp, norm):
    entry, model, x0 = mlp
    p = _np(model)
    k1, k2 = _ranked_keep(p["fc1.weight"], 40, norm), _ranked_keep(p["fc2.weight"], 20, norm)
    pruned = prune_channels(model, x0, {"fc1": 24, "fc2": 12}, norm=norm)
    q = _np(pruned)
    assert np.array_equal(q["fc1.weight"], p["fc1.weight"][k1])
    assert np.array_equal(q["fc1.bias"], p["fc1.bias"][k1])
    assert np.array_equal(q["fc2.weight"], p["fc2.weight"][k2][:, k1])
    assert np.array_equal(q["fc3.weight"], p["fc3.weight"][:, k2])
    assert np.array_equal(q["fc3.bias"], p["fc3.bias"])
    # numpy forward of the original with the removed neurons zeroed (row and bias)
    z = {k: v.copy() for k, v in p.items()}
    for layer, keep in (("fc1", k1), ("fc2", k2)):
        gone = np.setdiff1d(np.arange(len(z[f"{layer}.weight"])), keep)
        z[f"{layer}.weight"][gone] = 0.0
        z[f"{layer}.bias"][gone] = 0.0
    x = np.array(entry.dataset().x_test, np.float64)
    h = np.maximum(x @ z["fc1.weight"].T + z["fc1.bias"], 0)
    h = np.maximum(h @ z["fc2.weight"].T + z["fc2.bias"], 0)
    ref = h @ z["fc3.weight"].T + z["fc3.bias"]
    np.testing.assert_allclose(_out(pruned, x), ref, rtol=0, atol=1e-12)
    plan = plan_channels(model, x0, {"fc1": 24, "fc2": 12}, norm=norm)
    np.testing.assert_allclose(_out(mask_channels(model, x0, plan), x), ref, rtol=0, atol=1e-12)


def test_cnn_pruned_equals_zeroed_numpy_reference(cnn):
    entry, model, x0 = cnn
    p = _np(model)
    k1, k2 = _ranked_keep(p["conv1.weight"], 5), _ranked_keep(p["conv2.weight"], 9)
    pruned = prune_channels(model, x0, {"conv1": 3, "conv2": 7})
    q = _np(pruned)
    cols = np.array([c * 16 + j for c in k2 for j in range(16)])  # flatten: 16 = 4x4 block
    assert np.array_equal(q["conv2.weight"], p["conv2.weight"][k2][:, k1])
    assert np.array_equal(q["fc.weight"], p["fc.weight"][:, cols])
    z = {k: v.copy() for k, v in p.items()}
    for layer, keep in (("conv1", k1), ("conv2", k2)):
        gone = np.setdiff1d(np.arange(len(z[f"{layer}.weight"])), keep)
        z[f"{layer}.weight"][gone] = 0.0
        z[f"{layer}.bias"][gone] = 0.0
    x = np.array(entry.dataset().x_test[:64], np.float64)
    h = np.maximum(_conv(x, z["conv1.weight"], z["conv1.bias"], 1), 0)
    h = np.maximum(_conv(h, z["conv2.weight"], z["conv2.bias"], 1), 0)
    h = h.reshape(len(h), 16, 4, 2, 4, 2).max(axis=(3, 5)).reshape(len(h), -1)
    ref = h @ z["fc.weight"].T + z["fc.bias"]
    np.testing.assert_allclose(_out(pruned, x), ref, rtol=0, atol=1e-12)


class _BnNet(nn.Module):
    """conv -> BN -> relu -> conv -> relu -> avgpool -> view(B, -1) -> linear -> fn relu -> linear."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.act1, self.conv2 = nn.ReLU(), nn.Conv2d(6, 5, 3, bias=False)
        self.pool, self.fc1, self.fc2 = nn.AvgPool2d(2), nn.Linear(5 * 2 * 2, 7), nn.Linear(7, 3)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = x.view(x.size(0), -1)
        return self.fc2(torch.nn.functional.relu(self.fc1(x)))


def _bn_net() -> nn.Module:
    torch.manual_seed(5)
    net = _BnNet()
    with torch.no_grad():
        net.bn1.weight.uniform_(0.5, 1.5)
        net.bn1.bias.uniform_(-0.5, 0.5)
        net.bn1.running_mean.uniform_(-0.5, 0.5)
        net.bn1.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_bn_view_and_functional_relu_equal_output_zeroing_hooks():
    net = _bn_net()
    x0 = torch.zeros(1, 3, 6, 6)
    assert prunable_layers(net, x0) == {"conv1": "prunable", "conv2": "prunable",
                                        "fc1": "prunable", "fc2": "it produces the model output"}
    amount = {"conv1": 2, "conv2": 2, "fc1": 3}
    plan = plan_channels(net, x0, amount)
    pruned = apply_plan(net, x0, plan)
    assert pruned.bn1.num_features == 4 and pruned.conv2.weight.shape == (3, 4, 3, 3)
    assert pruned.fc1.weight.shape == (4, 12) and pruned.fc2.weight.shape == (3, 4)
    # reference: the original net whose removed channels are zeroed at the activations
    ref_net = _bn_net().double()
    where = {"act1": "conv1", "pool": "conv2"}
    for mod_name, layer in where.items():
        gone = list(plan.removed(layer))
        getattr(ref_net, mod_name).register_forward_hook(
            lambda m, i, o, gone=gone: o.index_fill(1, torch.tensor(gone), 0.0))
    gone_fc1 = torch.tensor(plan.removed("fc1"))
    ref_net.fc1.register_forward_hook(lambda m, i, o: o.index_fill(1, gone_fc1, 0.0))
    x = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(2)).double()
    with torch.no_grad():
        ref = ref_net(x).numpy()
    np.testing.assert_allclose(_out(pruned, x), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_out(mask_channels(net, x0, plan), x), ref, rtol=0, atol=1e-12)


def test_ties_keep_lower_index_and_l1_vs_l2_differ():
    lin = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():
        lin[0].weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 0.0], [1.0, 1.0], [0.0, 1.9]]))
    x0 = torch.zeros(1, 2)
    # L1: 2, 2, 2, 1.9 -> keep the first two of the tied rows; L2: 1.41, 2, 1.41, 1.9
    assert plan_channels(lin, x0, {"0": 2}, norm="l1").keep == {"0": (0, 1)}
    assert plan_channels(lin, x0, {"0": 2}, norm="l2").keep == {"0": (1, 3)}


# ------------------------------------------------------------ hardware size
def test_pruned_mlp_has_smaller_graph_and_loop_nests(mlp):
    _, model, x0 = mlp
    pruned = prune_channels(model, x0, 0.5)  # 64 -> 32, 32 -> 16
    g = lower(trace(pruned, x0))
    assert (g.node("fc1").nest.gemm_n, g.node("fc1").nest.gemm_k) == (32, 64)
    assert (g.node("fc2").nest.gemm_n, g.node("fc2").nest.gemm_k) == (16, 32)
    assert (g.node("fc3").nest.gemm_n, g.node("fc3").nest.gemm_k) == (10, 16)
    assert g.total_macs == 64 * 32 + 32 * 16 + 16 * 10
    assert trace(model, x0).total_macs == 64 * 64 + 64 * 32 + 32 * 10


def test_mlp_half_macs_finetuned_within_2pp_and_runs_int8_in_golden(mlp):
    entry, model, x0 = mlp
    ds = entry.dataset()
    pruned, plan = prune_to_macs(model, x0, 0.5)
    n1, n2 = len(plan.keep["fc1"]), len(plan.keep["fc2"])
    frac = (64 * n1 + n1 * n2 + n2 * 10) / (64 * 64 + 64 * 32 + 32 * 10)
    assert frac <= 0.5 and trace(pruned, x0).total_macs == 64 * n1 + n1 * n2 + n2 * 10
    y = np.asarray(ds.y_test)
    xt = np.array(ds.x_test, np.float32)
    with torch.no_grad():
        base = float((model(torch.from_numpy(xt)).argmax(-1).numpy() == y).mean())
    res = finetune(pruned, ds, epochs=10, lr=1e-3, seed=0)
    with torch.no_grad():
        after = float((res.model(torch.from_numpy(xt)).argmax(-1).numpy() == y).mean())
    assert after == res.acc_after
    print(f"\nmlp-digits pruned to {n1}/{n2} neurons, {frac:.3f} of MACs: float acc "
          f"{base:.4f} -> {res.acc_before:.4f} (pruned) -> {after:.4f} (fine-tuned)")
    assert after >= base - 0.02
    g = prepare(res.model, x0, np.array(ds.x_train, np.float32), bits=8)
    acc8 = float((golden.predict(g, xt) == y).mean())
    print(f"int8 golden accuracy {acc8:.4f}")
    assert g.node("fc1").nest.gemm_n == n1 and acc8 >= after - 0.02


# ---------------------------------------------------------------- no mutation
def test_passes_do_not_mutate_inputs(mlp):
    _, model, x0 = mlp
    before = _state(model)
    plan = plan_channels(model, x0, 0.5)
    apply_plan(model, x0, plan)
    mask_channels(model, x0, plan)
    prune_magnitude(model, 0.5)
    finetune(model, models.get("mlp-digits").dataset(), epochs=1)
    assert _same_state(before, _state(model)) and model.fc1.weight.dtype == torch.float32
    g = trace(model, x0)
    w = g.node("fc1").params["weight"].copy()
    prune_graph(g, 0.5)
    assert np.array_equal(g.node("fc1").params["weight"], w)
    assert "weight_sparsity" not in g.node("fc1").attrs


def test_deterministic(cnn):
    _, model, x0 = cnn
    a, b = prune_channels(model, x0, 0.3), prune_channels(model, x0, 0.3)
    assert _same_state(a.state_dict(), b.state_dict())


# ---------------------------------------------------------------- magnitude
@pytest.mark.parametrize("s", [0.0, 0.1, 0.37, 0.5, 0.9, 0.999])
def test_global_magnitude_sparsity_is_exact(mlp, s):
    _, model, _ = mlp
    pruned, masks = prune_magnitude(model, s, scope="global")
    ws = [model.get_submodule(n).weight.detach().numpy() for n in ("fc1", "fc2", "fc3")]
    total = sum(w.size for w in ws)
    k = int(np.floor(s * total + 0.5))
    assert sum(int((~m).sum()) for m in masks.values()) == k
    assert abs(weight_sparsity(pruned) - s) <= 0.5 / total
    # brute force: every removed magnitude <= every kept magnitude
    mags = np.concatenate([np.abs(w).ravel() for w in ws])
    keep = np.concatenate([masks[f"{n}.weight"].numpy().ravel() for n in ("fc1", "fc2", "fc3")])
    if 0 < k < total:
        assert mags[~keep].max() <= mags[keep].min()
    assert torch.equal(pruned.fc1.bias, model.fc1.bias)


def test_per_layer_magnitude_sparsity_each_layer(cnn):
    _, model, _ = cnn
    pruned, masks = prune_magnitude(model, 0.6, scope="layer")
    for name in ("conv1", "conv2", "fc"):
        w = getattr(model, name).weight.detach().numpy()
        z = int((getattr(pruned, name).weight == 0).sum())
        assert z == int(np.floor(0.6 * w.size + 0.5))
        assert np.abs(w[~masks[f"{name}.weight"].numpy()]).max() <= \
            np.abs(w[masks[f"{name}.weight"].numpy()]).min()


def test_graph_level_magnitude_equals_module_level(cnn):
    _, model, x0 = cnn
    pruned, _ = prune_magnitude(model, 0.4)
    g = prune_graph(trace(model, x0), 0.4)
    ref = trace(pruned, x0)
    for name in ("conv1", "conv2", "fc"):
        assert np.array_equal(g.node(name).params["weight"], ref.node(name).params["weight"])
    total = sum(g.node(n).params["weight"].size for n in ("conv1", "conv2", "fc"))
    zeros = sum(int((g.node(n).params["weight"] == 0).sum()) for n in ("conv1", "conv2", "fc"))
    assert zeros == int(np.floor(0.4 * total + 0.5))


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, True, "0.5", None])
def test_bad_sparsity(mlp, bad):
    with pytest.raises(PruneError, match=r"sparsity must be a fraction in \[0, 1\)"):
        prune_magnitude(mlp[1], bad)
    with pytest.raises(PruneError, match=r"sparsity must be a fraction in \[0, 1\)"):
        prune_graph(trace(mlp[1], mlp[2]), bad)


@pytest.mark.parametrize("amount, match", [
    (1.0, r"outside \[0, 1\).*pruning every channel"),
    (-0.2, r"outside \[0, 1\)"),
    ({"fc1": 64}, r"cannot remove 64 of its 64 output channels; remove 0..63"),
    ({"fc3": 0.5}, "cannot be pruned: it produces the model output"),
    ({"relu1": 0.5}, "is a ReLU; prunable layers: nn.Linear, nn.Conv2d"),
    ({"nope": 0.5}, "no layer named 'nope'; prunable layers: fc1, fc2"),
    ("half", "amount must be a fraction"),
])
def test_bad_channel_requests(mlp, amount, match):
    with pytest.raises(PruneError, match=match):
        prune_channels(mlp[1], mlp[2], amount)


def test_bad_norm_scope_and_unsupported_layers(mlp):
    with pytest.raises(PruneError, match="norm must be one of l1, l2"):
        prune_channels(mlp[1], mlp[2], 0.5, norm="linf")
    with pytest.raises(PruneError, match="scope must be one of global, layer"):
        magnitude_keep([np.ones(3)], 0.5, scope="net")
    grouped = nn.Sequential(nn.Conv2d(2, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1, groups=2),
                            nn.Flatten(), nn.Linear(4, 2))
    why = prunable_layers(grouped, torch.zeros(1, 2, 1, 1))
    assert "grouped Conv2d (groups=2)" in why["0"] and "grouped" in why["2"]
    with pytest.raises(PruneError, match=r"cannot be pruned: its consumer '2' is a grouped"):
        prune_channels(grouped, torch.zeros(1, 2, 1, 1), {"0": 1})
    gelu = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with pytest.raises(PruneError, match=r"module '1' \(Sigmoid\), which is not supported"):
        prune_channels(gelu, torch.zeros(1, 3), {"0": 1})
    with pytest.raises(PruneError, match="magnitude pruning supports nn.Linear and nn.Conv2d"):
        prune_magnitude(nn.Sequential(nn.Linear(2, 2), nn.LSTM(2, 2)), 0.5, layers=["1"])
    q = prepare(mlp[1], mlp[2], np.array(mlp[0].dataset().x_train[:32]))
    with pytest.raises(PruneError, match="already quantised; prune the float graph"):
        prune_graph(q, 0.5)


def test_cnn_half_macs_finetuned_within_2pp(cnn):
    entry, model, x0 = cnn
    ds = entry.dataset()
    pruned, plan = prune_to_macs(model, x0, 0.5)
    n1, n2 = len(plan.keep["conv1"]), len(plan.keep["conv2"])
    macs = 64 * n1 * 9 + 64 * n2 * n1 * 9 + n2 * 16 * 10  # 8x8 maps, 3x3 kernels, 4x4 pooled
    assert trace(pruned, x0).total_macs == macs <= 0.5 * (64 * 8 * 9 + 64 * 16 * 8 * 9 + 2560)
    res = finetune(pruned, ds, epochs=10, lr=1e-3, seed=0)
    base = float(np.mean(models.predict(model, ds.x_test) == ds.y_test))
    print(f"\ncnn-digits pruned to {n1}/{n2} channels: float acc {base:.4f} -> "
          f"{res.acc_before:.4f} -> {res.acc_after:.4f} (fine-tuned)")
    assert res.acc_after >= base - 0.02


class _Dynamic(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x) if x.sum() > 0 else x  # data-dependent control flow


def test_bad_plans_and_untraceable_model(mlp):
    _, model, x0 = mlp
    for keep, sizes in (({"fc1": ()}, {"fc1": 64}), ({"fc1": (0, 0)}, {"fc1": 64}),
                        ({"fc1": (64,)}, {"fc1": 64}), ({"fc1": (0,)}, {"fc1": 32})):
        with pytest.raises(PruneError, match="plan for 'fc1' must keep 1..64 distinct"):
            apply_plan(model, x0, ChannelPlan(keep, sizes))
    with pytest.raises(PruneError, match="plan prunes 'fc3', which cannot be pruned: it "
                                         "produces the model output"):
        mask_channels(model, x0, ChannelPlan({"fc3": (0,)}, {"fc3": 10}))
    with pytest.raises(PruneError, match="needs a torch.fx-traceable model; tracing _Dynamic"):
        prune_channels(_Dynamic(), torch.zeros(1, 2), 0.5)
