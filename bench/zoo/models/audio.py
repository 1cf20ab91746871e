"""Audio: a Whisper-style encoder and a wav2vec2 conv front end (transformers, tiny configs),
and keyword spotters over MFCC frames (GRU, LSTM, bidirectional LSTM, Elman RNN, DS-CNN, TCN)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..spec import Tensor, ZooModel
from ._common import Outputs, transformers_model

FRAMES, MFCC, KEYWORDS = 49, 10, 12  # one second of 10 ms hops, 10 coefficients, 12 keywords
MFCC_FRAMES = (Tensor.floats("mfcc", 1, FRAMES, MFCC),)


class RecurrentSpotter(nn.Module):
    """A recurrent keyword spotter: `kind` (GRU | LSTM | RNN) over the frames, a linear head on the
    last frame's output."""

    def __init__(self, kind: str = "GRU", hidden: int = 32, layers: int = 1, bidirectional: bool = False) -> None:
        super().__init__()
        self.rnn = getattr(nn, kind)(MFCC, hidden, layers, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), KEYWORDS)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        sequence = self.rnn(mfcc)[0]
        return self.head(sequence[:, -1])


class DepthwiseSeparableSpotter(nn.Module):
    """DS-CNN keyword spotter: a strided conv, depthwise-separable blocks, average pool, linear."""

    def __init__(self, width: int = 32, blocks: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, (10, 4), stride=(2, 2), padding=(5, 1)), nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(blocks):
            layers += [nn.Conv2d(width, width, 3, padding=1, groups=width), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.Conv2d(width, width, 1), nn.BatchNorm2d(width), nn.ReLU()]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, KEYWORDS)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(mfcc.unsqueeze(1)))


class TemporalConvNet(nn.Module):
    """Dilated causal Conv1d stack (left padding), residual adds, global max pool."""

    def __init__(self, width: int = 24, dilations: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        self.inp = nn.Conv1d(MFCC, width, 1)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 3, dilation=d) for d in dilations)
        self.dilations = dilations
        self.head = nn.Linear(width, KEYWORDS)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        x = self.inp(mfcc.transpose(1, 2))
        for conv, dilation in zip(self.convs, self.dilations):
            x = x + torch.relu(conv(nn.functional.pad(x, (2 * dilation, 0))))
        return self.head(x.amax(dim=2))


def _whisper_encoder() -> nn.Module:
    """Whisper's encoder (two Conv1d + GELU, sinusoidal positions, pre-norm attention) on 32 mel frames."""
    whisper = transformers_model(
        "WhisperModel", "WhisperConfig", (), (), vocab_size=64, num_mel_bins=16, d_model=32, encoder_layers=2,
        encoder_attention_heads=2, decoder_layers=1, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=16, max_target_positions=16,
        pad_token_id=1, bos_token_id=0, eos_token_id=1, decoder_start_token_id=0,  # inside the tiny vocabulary
    )
    return Outputs(whisper.model.get_encoder(), ("input_features",), ("last_hidden_state",)).eval()


MODELS = [
    ZooModel("whisper_encoder", "transformers", "audio", _whisper_encoder, (Tensor.floats("input_features", 1, 16, 32),),
             ("last_hidden_state",)),
    # The conv feature encoder (GroupNorm, GELU) on 0.1 s of 16 kHz audio, then two attention layers;
    # two outputs: the hidden states and the conv features.
    ZooModel("wav2vec2", "transformers", "audio",
             partial(transformers_model, "Wav2Vec2Model", "Wav2Vec2Config", ("input_values",), ("last_hidden_state", "extract_features"),
                     hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     conv_dim=(16, 16, 16), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16,
                     num_conv_pos_embedding_groups=4),
             (Tensor.floats("input_values", 1, 1600),), ("last_hidden_state", "extract_features")),
    ZooModel("kws_gru", "torch", "audio", partial(RecurrentSpotter, "GRU"), MFCC_FRAMES, ("scores",), fast=True,
             formats=("onnx", "onnx-dynamo", "pt2")),
    ZooModel("kws_lstm", "torch", "audio", partial(RecurrentSpotter, "LSTM"), MFCC_FRAMES, ("scores",),
             formats=("onnx", "onnx-dynamo", "pt2")),
    ZooModel("kws_bilstm", "torch", "audio", partial(RecurrentSpotter, "LSTM", layers=2, bidirectional=True), MFCC_FRAMES, ("scores",)),
    ZooModel("kws_gru_2layer_bidir", "torch", "audio", partial(RecurrentSpotter, "GRU", layers=2, bidirectional=True), MFCC_FRAMES, ("scores",)),
    ZooModel("kws_rnn_tanh", "torch", "audio", partial(RecurrentSpotter, "RNN"), MFCC_FRAMES, ("scores",)),
    ZooModel("kws_dscnn", "torch", "audio", DepthwiseSeparableSpotter, MFCC_FRAMES, ("scores",), formats=("onnx", "pt2")),
    ZooModel("kws_tcn", "torch", "audio", TemporalConvNet, MFCC_FRAMES, ("scores",)),
]
