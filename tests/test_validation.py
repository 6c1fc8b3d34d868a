"""Bad input gets an error that names the problem and the fix; nothing silently continues."""

import math

import pytest
import torch

from pcbp.network import PCN
from pcbp.rules import BP, IL, ZIL, FaZIL, FaZILQuiet, ZILWave, autograd_updates, make_rule

RULES = [BP(0.1), IL(0.1), ZIL(0.1), FaZIL(0.1)]
ids = [r.name for r in RULES]


@pytest.mark.parametrize("rule", RULES, ids=ids)
def test_wrong_input_width(problem, rule):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match=r"s_in .*expected \(batch, 7\)"):
        rule(net, s_in[:, :5], s_out)


@pytest.mark.parametrize("rule", RULES, ids=ids)
def test_wrong_target_width(problem, rule):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match=r"s_out .*expected \(batch, 3\)"):
        rule(net, s_in, s_out[:, :2])


def test_single_sample_without_batch_axis_says_unsqueeze(problem):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match="unsqueeze"):
        BP(0.1)(net, s_in[0], s_out[0])


def test_batch_sizes_must_match(problem):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match="same mini-batch"):
        ZIL(0.1)(net, s_in, s_out[:3])


def test_dtype_mismatch_says_how_to_convert(problem):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match="float32.*float64.*convert"):
        ZIL(0.1)(net, s_in.float(), s_out)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("rule", RULES, ids=ids)
def test_non_finite_batch(problem, rule, bad):
    net, s_in, s_out = problem
    s_in = s_in.clone()
    s_in[2, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        rule(net, s_in, s_out)


@pytest.mark.parametrize("rule", RULES, ids=ids)
def test_non_finite_weight(problem, rule):
    net, s_in, s_out = problem
    net.theta[2][0, 0] = math.nan
    with pytest.raises(FloatingPointError, match="θ\\^2.*learning rate"):
        rule(net, s_in, s_out)


@pytest.mark.parametrize("gamma", [0, -0.1, math.nan, math.inf])
@pytest.mark.parametrize("cls", [IL, ZIL, FaZIL])
def test_gamma_must_be_positive(cls, gamma):
    with pytest.raises(ValueError, match="gamma.*> 0"):
        cls(0.1, gamma=gamma)


@pytest.mark.parametrize("alpha", [0, -1, math.nan])
def test_alpha_must_be_positive(alpha):
    with pytest.raises(ValueError, match="alpha"):
        BP(alpha)


@pytest.mark.parametrize("T", [0, -3, 2.5, True])
def test_T_must_be_a_positive_integer(T):
    with pytest.raises(ValueError, match="T must be an integer ≥ 1"):
        IL(0.1, T=T)


def test_fazil_steps_must_be_positive():
    with pytest.raises(ValueError, match="steps must be an integer ≥ 1"):
        FaZIL(0.1, steps=0)


@pytest.mark.parametrize("schedule", [{4: 4}, {-1: 0}, {0: 0, 9: 1}])
def test_schedule_naming_a_missing_layer(problem, schedule):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match=r"schedule names layer.*l = 0 … 3"):
        ZIL(0.1, schedule=schedule)(net, s_in, s_out)


@pytest.mark.parametrize("steps", [-1, [], [0, -2], 1.5, True])
def test_schedule_with_bad_steps(problem, steps):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match="int ≥ 0"):
        ZIL(0.1, schedule={0: steps, 1: 1, 2: 2, 3: 3})(net, s_in, s_out)


def test_unknown_rule_lists_the_rules():
    with pytest.raises(ValueError, match="unknown rule 'dfa'.*bp, il, zil, zilwave, fazil, fazilquiet"):
        make_rule("dfa", 0.1)


def test_rule_names_are_forgiving():
    assert isinstance(make_rule("Fa-Z-IL", 0.1), FaZIL) and isinstance(make_rule("z_il", 0.1), ZIL)


@pytest.mark.parametrize("kwargs, match", [({"phi": "magic"}, "phi='magic'"), ({"init": "zeros"}, "init='zeros'")])
def test_fazil_unknown_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FaZIL(0.1, **kwargs)


def test_input_must_be_a_tensor(problem):
    net, s_in, s_out = problem
    with pytest.raises(TypeError, match="torch.Tensor"):
        BP(0.1)(net, s_in.tolist(), s_out)


def test_train_rejects_zero_epochs(problem):
    from pcbp.trainer import train

    net, s_in, s_out = problem
    with pytest.raises(ValueError, match="epochs"):
        train(net, BP(0.1), s_in, s_out, epochs=0)


def test_nothing_changed_after_a_rejected_call(problem):
    net, s_in, s_out = problem
    before = [p.clone() for p in net.parameters()]
    s_out = s_out.clone()
    s_out[0, 0] = math.nan
    with pytest.raises(ValueError):
        ZIL(0.1)(net, s_in, s_out)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_large_but_finite_float16_weights_are_not_called_infinite():
    from pcbp.checks import all_finite

    big = torch.full((10,), 6e4, dtype=torch.float16)  # the sum overflows, the entries do not
    assert all_finite(big) and not all_finite(torch.tensor([1.0, math.inf]).half())


@pytest.mark.parametrize("rule", RULES, ids=ids)
def test_a_missing_target_is_an_error_not_zero_updates(problem, rule):
    net, s_in, _ = problem
    with pytest.raises(TypeError, match="s_out .*None.*pass the mini-batch's targets"):
        rule(net, s_in, None)


@pytest.mark.parametrize("rule", RULES, ids=ids)
def test_an_empty_batch_is_an_error(problem, rule):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match="empty mini-batch.*at least one sample"):
        rule(net, s_in[:0], s_out[:0])


@pytest.mark.parametrize("apply", [True, False])
@pytest.mark.parametrize("rule", RULES + [ZILWave(0.1), FaZILQuiet(0.1)], ids=ids + ["Z-IL (wave)", "quiet"])
def test_updates_that_overflow_raise_and_leave_the_weights_alone(rule, apply):
    """A finite but huge input overflows the updates of a linear network: an error, not inf weights."""
    net = PCN((3, 4, 4, 5), "linear", seed=0)
    before = [p.clone() for p in net.parameters()]
    s_in = torch.full((2, 5), 1e200, dtype=torch.float64)
    with pytest.raises(FloatingPointError, match="NaN or infinite.*scale the inputs"):
        rule(net, s_in, torch.zeros(2, 3, dtype=torch.float64), apply=apply)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_a_partial_schedule_is_an_error_that_names_the_forgotten_layers(problem):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match=r"no step for layer\(s\) \[1, 2, 3\].*frozen="):
        ZIL(0.1, schedule={0: 0})(net, s_in, s_out)


def test_freezing_is_explicit_and_freezes_only_what_it_names(problem):
    net, s_in, s_out = problem
    up = ZIL(0.1, schedule={0: 0, 2: 2}, frozen=[1, 3])(net, s_in, s_out, apply=False)
    ref = autograd_updates(net, s_in, s_out, 0.1)
    assert sorted(up.theta) == [1, 3]
    for l in (1, 3):
        torch.testing.assert_close(up.theta[l], ref.theta[l], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="both scheduled and frozen"):
        ZIL(0.1, schedule={0: 0, 1: 1, 2: 2, 3: 3}, frozen=[2])(net, s_in, s_out)
    with pytest.raises(ValueError, match=r"frozen names layer\(s\) \[7\]"):
        ZIL(0.1, frozen=[7])(net, s_in, s_out)


@pytest.mark.parametrize("make", [lambda: BP(True), lambda: ZIL(0.1, gamma=True), lambda: IL(0.1, gamma=True),
                                  lambda: FaZIL(0.1, gamma=True), lambda: FaZIL(0.1, settle_tol=True)])
def test_booleans_are_not_numbers(make):
    with pytest.raises(ValueError, match="finite number > 0, got True"):
        make()


@pytest.mark.parametrize("make", [lambda: ZIL(0.1, init_noise=-0.1), lambda: IL(0.1, init_noise=math.nan),
                                  lambda: FaZIL(0.1, tau=-1e-9)])
def test_negative_noise_or_threshold_is_an_error(make):
    with pytest.raises(ValueError, match="finite number ≥ 0"):
        make()
