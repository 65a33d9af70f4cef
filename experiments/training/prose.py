"""The words of docs/training.md around the tables (no numbers: those come from the results)."""

PROSE = {
    "intro": (
        "The paper proposes the unit-wise natural gradient: the Fisher information of a wide "
        "random network is, to leading order, block diagonal over units, and each unit's block "
        "has a closed form. `python -m experiments.training` asks whether that trains faster "
        "than the usual optimizers and than the other cheap approximations of the natural "
        "gradient, on small tasks that run on two CPU cores."
    ),
    "protocol": (
        "Each method's learning rate (and damping, where it has one) is chosen on a log grid "
        "(six learning rates a factor √10 apart, three dampings 10⁻³, 3·10⁻², 1; `--quick`: "
        "three learning rates and the upper two dampings) by the final "
        "validation loss of one run from the tuning seed; the chosen values are then trained "
        "from every seed. A run diverges when its training loss is not finite or exceeds 10⁶; "
        "it then stops. Times are those of the training steps alone (forward, every backward, "
        "the optimizer's step), on one thread for every method; the first two steps of each "
        "method (compilation) are run and discarded beforehand.\n\n"
        "The methods: SGD, SGD with momentum 0.9 and Adam (`torch.optim`); fisher_sym's "
        "`UnitwiseNaturalGradient` with the back-propagated factor estimated from sampled "
        "targets, in each input mode (`standard`: the paper's x ~ N(0, I); `scale`: one "
        "running input variance per layer; `moments`: running per-input means and variances); "
        "the unit-wise natural gradient with each unit's (n+1)×(n+1) block "
        "E[δᵢ² x* x*ᵀ] estimated from the mini-batch with sampled targets, plus damping·I, "
        "solved exactly (Kurita 1994, Ollivier 2015); the quasi-diagonal natural gradient "
        "(Ollivier 2015: of the same block only the diagonal and the bias row and column); "
        "K-FAC (Martens & Grosse 2015: A = E[x* x*ᵀ], S = E[δδᵀ], running averages with decay "
        "0.95, factored Tikhonov damping); and the exact natural gradient "
        "(G = E_x[Jᵀ H J] over the mini-batch, H the output Fisher, (G + λI)⁻¹ g by a dense "
        "solve) where the network is small enough. All the natural-gradient methods take "
        "plain steps θ ← θ − lr·(F + damping)⁻¹ g, without momentum. K-FAC is our own "
        "(experiments/training/curvature.py), tested against a dense Kronecker solve: of the "
        "PyTorch packages on the index, nngeometry 0.4 keeps K-FAC as a Fisher object built "
        "from a data loader rather than an optimizer step, and asdfghjkl (ASDL) is an alpha "
        "release; a dozen lines with a dense test were the safer choice here. "
        "each method's update is checked against an independent dense computation in "
        "tests/test_training.py."
    ),
    "discussion": "## Reading the results\n\n(filled in from the full run)",
}
