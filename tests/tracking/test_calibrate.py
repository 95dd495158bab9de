"""The confidence fitting: penalties chosen on held-out scenes."""

import numpy as np

from tracking.calibrate import L2_GRID, choose_threshold, fit_logistic, held_out_l2


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
