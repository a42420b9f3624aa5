"""The suite's streaming model, as a torch module (scripted for export, so it keeps its If).

No ``from __future__ import annotations`` here: torch.jit.script reads the annotations.
"""

import torch

FRAMES, FEATURES, HIDDEN, CLASSES = 20, 16, 32, 4


class Streaming(torch.nn.Module):
    """A 2-layer GRU over audio-like frames with its recurrent state as an input and an
    output, branching on an int64 scalar sample rate."""

    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(FEATURES, HIDDEN, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, CLASSES)

    def forward(self, frames, state, sample_rate):
        if bool(sample_rate == 16000):
            x = frames
        else:
            x = frames * 0.5  # a stand-in for resampling
        y, new_state = self.gru(x, state)
        return self.head(y[:, -1]), new_state
