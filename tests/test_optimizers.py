"""Optimisers (AdamW; SGD with three parameter groups) and learning-rate schedules on real networks."""

from __future__ import annotations

import pytest
import torch

from aerialseg.nets import build_model
from aerialseg.optimizers import build_optimizer, build_scheduler, parameter_groups, step_after_epoch
from trainkit import one_thread  # noqa: F401 (one_thread: autouse fixture)


def _net() -> torch.nn.Module:
    return build_model({"name": "unet", "encoder": "resnet18", "encoder_depth": 3, "classes": 3,
                        "decoder_channels": [16, 8, 8]})


def test_sgd_decays_weights_only_not_biases_nor_norm_layers():
    net = _net()
    opt = build_optimizer("sgd", net, 0.01, 1e-4)
    assert isinstance(opt, torch.optim.SGD) and len(opt.param_groups) == 3
    decayed, biases, norms = opt.param_groups
    assert decayed["weight_decay"] == 1e-4 and biases["weight_decay"] == norms["weight_decay"] == 0.0
    assert all(g["momentum"] == 0.9 and g["nesterov"] for g in opt.param_groups)
    ids = lambda group: {id(p) for p in group["params"]}
    assert ids(decayed) | ids(biases) | ids(norms) == {id(p) for p in net.parameters()}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))
    bn = net.encoder.bn1
    assert id(bn.weight) in ids(norms) and id(bn.bias) in ids(biases)
    assert id(net.encoder.conv1.weight) in ids(decayed) and id(net.segmentation_head[0].bias) in ids(biases)


def test_adamw_keeps_one_group_over_all_parameters():
    net = _net()
    opt = build_optimizer("adamw", net, 0.002, 1e-4)
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 1
    assert opt.param_groups[0]["weight_decay"] == 1e-4 and len(parameter_groups(net, 0.1)) == 3


def test_exponential_schedule_steps_per_epoch_down_to_one_percent():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_scheduler("exponential", opt, 0.1, epochs=5, steps=7)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        step_after_epoch("exponential", sched, 0.5)
    assert lrs[0] == 0.1 and lrs[-1] == pytest.approx(0.001)
    sched = build_scheduler("exponential", opt, 0.1, epochs=5, steps=7, decay=0.5)
    assert sched.gamma == 0.5


def test_plateau_halves_the_rate_when_miou_stalls_and_ignores_unscored_epochs():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_scheduler("plateau", opt, 0.1, epochs=10, steps=7, patience=1)
    for miou in (0.5, 0.6, None, None, 0.6):
        step_after_epoch("plateau", sched, miou)
    assert opt.param_groups[0]["lr"] == 0.1  # one epoch without a better score: patience 1 not exceeded
    step_after_epoch("plateau", sched, 0.55)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    state = sched.state_dict()
    again = build_scheduler("plateau", torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), 0.1, 10, 7,
                            patience=1)
    again.load_state_dict(state)
    assert again.best == sched.best and again.num_bad_epochs == sched.num_bad_epochs
