"""fisher_sym from PyTorch (the extra ``fisher_sym[torch]``): ``UnitwiseNaturalGradient``, a
torch.optim optimizer that preconditions every (Linear, φ) pair of a model by the generated
unit-wise natural gradient, and ``ResidualBlock``, the paper's residual block (Sec. 6).

``import fisher_sym`` never imports torch; this subpackage does. See docs/pytorch.md.
"""

try:
    import torch  # noqa: F401
except ImportError as error:
    raise ImportError(
        "fisher_sym.torch needs PyTorch: python -m pip install 'fisher_sym[torch]'"
    ) from error

from fisher_sym.torch.layers import UnitLayer, UnsupportedModelError, find_layers
from fisher_sym.torch.optimizer import UnitwiseNaturalGradient
from fisher_sym.torch.residual import ResidualBlock, ResidualMeanField, mean_field

__all__ = [
    "ResidualBlock",
    "ResidualMeanField",
    "UnitLayer",
    "UnitwiseNaturalGradient",
    "UnsupportedModelError",
    "find_layers",
    "mean_field",
]
