import pytest
import torch

from because_train.averaging import WeightAverage


def test_average_follows_weights_and_swaps_back() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    avg = WeightAverage([p], decay=0.5)
    assert avg.rate() == pytest.approx(0.1)  # warm-up: (1 + 0) / (10 + 0)
    for _ in range(200):
        with torch.no_grad():
            p.add_(1.0)
        avg.update()
    assert avg.rate() == 0.5
    # With decay 0.5 the average of a line that climbs 1 a step trails it by 1 step.
    assert avg.shadow[0] == pytest.approx(torch.full((3,), 199.0), abs=1e-3)
    with avg.applied():
        assert p.detach() == pytest.approx(torch.full((3,), 199.0), abs=1e-3)
    assert torch.equal(p.detach(), torch.full((3,), 200.0))


def test_average_round_trips_through_its_state() -> None:
    p = torch.nn.Parameter(torch.arange(4.0))
    avg = WeightAverage([p], decay=0.9)
    avg.update()
    with torch.no_grad():
        p.mul_(3)
    avg.update()
    again = WeightAverage([torch.nn.Parameter(torch.zeros(4))], decay=0.9)
    again.load_state_dict(avg.state_dict())
    assert again.updates == 2 and torch.equal(again.shadow[0], avg.shadow[0])


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_decay_outside_the_open_interval_is_refused(decay: float) -> None:
    with pytest.raises(ValueError, match="train.ema_decay"):
        WeightAverage([torch.nn.Parameter(torch.zeros(1))], decay=decay)
