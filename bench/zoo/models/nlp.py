"""NLP encoders and a causal decoder from transformers (tiny configs, random weights), and
PyTorch's own nn.TransformerEncoder. Token ids are int64; masks pad the last positions."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..spec import Tensor, ZooModel
from ._common import transformers_model

SEQ, VOCAB, PADDING = 16, 128, 4
# Two layers, two heads, width 32: small enough for CI, every layer type still there.
TINY = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)

IDS = Tensor.ints("input_ids", 1, SEQ, high=VOCAB)
MASK = Tensor.mask("attention_mask", 1, SEQ, padding=PADDING)
TOKEN_TYPES = Tensor.ints("token_type_ids", 1, SEQ, high=2)


def _encoder(name: str, model_class: str, config_class: str, *, inputs=(IDS, MASK), outputs=("last_hidden_state",),
             fast: bool = False, formats=("onnx",), note: str = "", fast_int8: bool = False, **config) -> ZooModel:
    names = tuple(t.name for t in inputs)
    make = partial(transformers_model, model_class, config_class, names, outputs, **config)
    return ZooModel(name, "transformers", "nlp", make, tuple(inputs), tuple(outputs), fast, tuple(formats), note, fast_int8)


class TorchEncoder(nn.Module):
    """nn.TransformerEncoder (pre-norm off, GELU) over embeddings, with a key padding mask."""

    def __init__(self, d: int = 32, heads: int = 2, layers: int = 2) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, src_key_padding_mask=attention_mask == 0)


MODELS = [
    # Two outputs: the hidden states and BERT's pooled (tanh) [CLS] vector.
    _encoder("bert", "BertModel", "BertConfig", inputs=(IDS, MASK, TOKEN_TYPES), outputs=("last_hidden_state", "pooler_output"),
             fast=True, formats=("onnx", "onnx-dynamo", "pt2"), fast_int8=True, **TINY),
    _encoder("distilbert", "DistilBertModel", "DistilBertConfig", formats=("onnx", "onnx-dynamo", "pt2"),
             vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64),
    _encoder("roberta", "RobertaModel", "RobertaConfig", **TINY),
    _encoder("albert", "AlbertModel", "AlbertConfig", outputs=("last_hidden_state", "pooler_output"), embedding_size=16, **TINY),
    _encoder("electra", "ElectraForPreTraining", "ElectraConfig", outputs=("logits",), embedding_size=16, **TINY),
    _encoder("mobilebert", "MobileBertModel", "MobileBertConfig", vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
             num_attention_heads=2, intermediate_size=64, embedding_size=16, intra_bottleneck_size=16, true_hidden_size=16,
             num_feedforward_networks=2, max_position_embeddings=64),
    _encoder("deberta_v2", "DebertaV2Model", "DebertaV2Config", **TINY),
    _encoder("t5_encoder", "T5EncoderModel", "T5Config", vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2),
    # Causal decoders over a fixed length: logits for every position, no KV cache.
    _encoder("gpt2", "GPT2LMHeadModel", "GPT2Config", outputs=("logits",), formats=("onnx", "onnx-dynamo", "pt2"),
             vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64, use_cache=False, bos_token_id=0, eos_token_id=0),
    _encoder("llama", "LlamaForCausalLM", "LlamaConfig", outputs=("logits",), vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64, use_cache=False),
    # OPT sums the attention mask into positions (a mask of 7s would run past them); BLOOM's ALiBi.
    _encoder("opt", "OPTModel", "OPTConfig", vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
             ffn_dim=64, max_position_embeddings=64, word_embed_proj_dim=32),
    _encoder("bloom", "BloomModel", "BloomConfig", vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=2),
    ZooModel("torch_transformer_encoder", "torch", "nlp", TorchEncoder, (Tensor.floats("x", 1, SEQ, 32), MASK), ("hidden",)),
]
