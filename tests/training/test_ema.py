"""The EMA update: decay ramps as min(decay, (1+n)/(10+n)), integer buffers are copied, not averaged."""

import torch

from animevae.training.state import ema_with_warmup


def test_ema_warmup_schedule_and_integer_buffers():
    update = ema_with_warmup(0.99)
    ema = [torch.zeros(3), torch.tensor(0)]
    new = [torch.ones(3), torch.tensor(7)]
    update(ema, new, torch.tensor(0))  # n = 0: decay 1/10, so ema = 0.9 * new
    assert torch.allclose(ema[0], torch.full((3,), 0.9))
    assert ema[1].item() == 7 and ema[1].dtype == torch.int64
    update(ema, [torch.full((3,), 2.0), torch.tensor(8)], torch.tensor(10**6))  # late: decay capped at 0.99
    assert torch.allclose(ema[0], torch.full((3,), 0.99 * 0.9 + 0.01 * 2.0))
    assert ema[1].item() == 8
