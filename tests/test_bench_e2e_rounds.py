"""bench.e2e.median_round: an end-to-end side's figures are its median round's, with every round's orders/s."""

from bench.e2e import median_round


def test_the_median_round_is_reported_whole_with_every_rounds_rate():
    rounds = [
        {"orders_per_second": 720, "cpu_ms_per_order": {"machine": 2.7}},
        {"orders_per_second": 580, "cpu_ms_per_order": {"machine": 3.4}},
        {"orders_per_second": 650, "cpu_ms_per_order": {"machine": 3.0}},
    ]
    reported = median_round(rounds)
    assert reported["orders_per_second"] == 650
    assert reported["cpu_ms_per_order"] == {"machine": 3.0}  # the figures of that round, not mixed from others
    assert reported["rounds"] == 3
    assert reported["rounds_orders_per_second"] == [720, 580, 650]  # in the order they ran


def test_an_even_count_reports_the_lower_middle_round_and_one_round_itself():
    assert median_round([{"orders_per_second": n} for n in (700, 600, 680, 640)])["orders_per_second"] == 640
    assert median_round([{"orders_per_second": 600}]) == {
        "orders_per_second": 600, "rounds": 1, "rounds_orders_per_second": [600]
    }  # fmt: skip
