"""The confidence fitting: penalties chosen on held-out scenes."""

import numpy as np

from tracking.calibrate import L2_GRID, choose_threshold, fit_logistic, held_out_l2, monotone_curve


def _data(signal: float, n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    noise = rng.normal(size=(n, 6))
    x = np.column_stack([np.ones(n), z, noise])
    y = (rng.random(n) < 1 / (1 + np.exp(-signal * z))).astype(float)
    return x, y, np.arange(n) // 20  # twenty rows per "scene"


def test_noise_features_get_the_heavier_penalty():
    x, y, g = _data(signal=0.0)
    assert held_out_l2(x, y, g) >= 1.0
    x, y, g = _data(signal=4.0)
    assert held_out_l2(x, y, g) in L2_GRID


def test_a_strong_feature_is_learned_and_the_bias_is_free():
    x, y, _ = _data(signal=4.0)
    w = fit_logistic(x, y, l2=1.0)
    assert w[1] > 2.0
    assert np.abs(w[2:]).max() < 0.5


def test_threshold_meets_the_first_target_it_can():
    probs = [0.999] * 50 + [0.5] * 50
    t, target = choose_threshold(probs, (0.005, 0.02))
    assert target == 0.005 and t == 0.999
    t, target = choose_threshold([0.9] * 10, (0.005, 0.02))
    assert target is None and t == 0.999


def test_the_bench_says_how_much_calibration_error_chance_alone_gives() -> None:
    from tracking.bench import Tally

    sure = Tally(conf=[(1.0, True)] * 200)
    assert sure.ece() == 0.0 and sure.ece_floor() == 0.0  # certain and right: no room for chance
    unsure = Tally(conf=[(0.6, i % 5 < 3) for i in range(200)])  # exactly 60% right at 0.6
    assert unsure.ece() < 1e-9
    assert 0.02 < unsure.ece_floor() < 0.05  # yet outcomes drawn at 0.6 miss by about sqrt(.24/200)


def test_the_recalibration_curve_is_monotone_and_never_promises_certainty() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(600)
    y = (rng.random(600) < p**2).astype(float)  # right less often than said in the middle
    curve = monotone_curve(p, y)
    xs, ys = np.asarray(curve["x"]), np.asarray(curve["y"])
    assert (np.diff(xs) > 0).all() and (np.diff(ys) >= 0).all()
    assert ys[0] > 0.0 and ys[-1] < 1.0  # a block all right (or all wrong) is shrunk
    mid = float(np.interp(0.5, xs, ys))
    assert 0.15 < mid < 0.4  # about 0.25: what such carts were right, not the 0.5 they were given
    # all right, all at one probability: one block, not certain
    assert monotone_curve(np.full(20, 0.9), np.ones(20)) == {"x": [0.9], "y": [round(21 / 22, 4)]}


def test_a_cart_probability_goes_through_the_recalibration_curve() -> None:
    from tracking import confidence as conf

    features = conf.CartFeatures(
        event_probs=[0.9], negative=False, seen=True, unattributed_nearby=0, ambiguous=False
    )
    weights = [0.0] * len(features.vector())  # the logistic says 0.5 for every cart
    with conf.using({"event_weights": [0.0], "cart_weights": weights}):
        assert conf.cart_probability(features) == 0.5
    curve = {"x": [0.2, 0.8], "y": [0.1, 0.7]}
    with conf.using({"event_weights": [0.0], "cart_weights": weights, "cart_recalibration": curve}):
        assert abs(conf.cart_probability(features) - 0.4) < 1e-9
