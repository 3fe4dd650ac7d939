"""The featurizer interface and its factory.

A featurizer turns encoded samples into (n, d) float32 gradient features in input order. Both
implementations share the proxy, the batching and the response-only loss; they differ in how the
per-sample gradient is projected.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.gradients.proxy import Proxy
from prism_agent.gradients.render import Encoded

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


class Featurizer(ABC):
    def __init__(self, proxy: Proxy, config: FeaturizerConfig):
        self.proxy = proxy
        self.config = config
        self.device = proxy.device

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def pad_id(self) -> int:
        tok = self.proxy.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    @abstractmethod
    def featurize(self, encoded: Sequence[Encoded]) -> np.ndarray:
        """(len(encoded), dim) float32 features, row i for encoded[i]."""

    def close(self) -> None:
        """Release hooks or buffers held on the proxy."""


def make_featurizer(proxy: Proxy, config: FeaturizerConfig) -> Featurizer:
    if config.kind == "exact":
        from prism_agent.gradients.exact import ExactFeaturizer

        return ExactFeaturizer(proxy, config)
    from prism_agent.gradients.fast import FastFeaturizer

    return FastFeaturizer(proxy, config)
