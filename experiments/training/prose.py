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
        "three learning rates and the upper two dampings) by the least validation loss over "
        "the epochs (as early stopping would) of one run from the tuning seed; where the best "
        "point lies on an edge of the grid, the grid is extended one step past it, up to twice "
        "(not in `--quick`); the chosen values are then trained "
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
        "release; a short class with a dense test was the safer choice here. "
        "Each method's update is checked against an independent dense computation in "
        "tests/test_training.py."
    ),
    "discussion": """## Reading the results

What follows is our reading of the full run's tables and figures above (the quick run is too
short to say much). The runs are deterministic given the seeds (a rerun reproduced every tuning
choice), but another machine moves the times and, within the spreads, the order of close
methods.

**Per epoch, on the student–teacher tasks, the natural-gradient methods train faster.** On the
two small student–teacher tasks the exact natural gradient reaches the lowest validation loss,
and fisher_sym's optimizer in the `scale` and `moments` modes, K-FAC and the unit blocks
estimated from the mini-batch all reach a lower least validation loss than SGD, momentum and
Adam. On the plain network these gaps are within about one standard deviation over the seeds;
on the residual network of Sec. 6, the setting the paper's algorithm is written for, they are
larger, and there fisher_sym's three modes come second only to the exact natural gradient,
ahead of K-FAC and ahead of the mini-batch estimate of the very blocks that fisher_sym computes
in closed form: the closed form is not only cheaper than estimating the block from a
mini-batch, it is less noisy. On the wide task (the regime of the paper's theory) K-FAC and
fisher_sym's `standard` mode lead, level within their spreads, ahead of the mini-batch blocks,
of Adam and of fisher_sym's other two modes. On the plain network fisher_sym (`scale`,
`moments`) is level with the mini-batch blocks and just behind K-FAC, while the `standard`
mode, which assumes every layer's input is N(0, I), is behind Adam: there the hidden layers'
inputs are tanh outputs of a network drawn with σ_w = 1.5, far from standard normal, and the
modes that track the real input statistics fix that. No single input mode is best on every
task.

**Per CPU second, at these sizes, fisher_sym does not win.** A step of fisher_sym's optimizer
costs several times a step of SGD or Adam (the sampled-target backward, the hooks, the running
statistics, one kernel call per layer), and on networks of 16 to 96 units that overhead, not
the O(n) update, is most of the cost. In the time panels Adam and momentum reach a given
training loss about as early as or earlier than fisher_sym; K-FAC, whose step costs about the
same as fisher_sym's here, reaches the lowest training loss of all methods on the plain and the
wide tasks, and in less CPU time than fisher_sym. The exact natural gradient is the slowest per
second, as it must be (a dense solve in the number of parameters). The unit blocks estimated
from the mini-batch cost O(m n³) per layer and are nearly ten times slower per step than
fisher_sym on the wide task, for a result that is no better: that is the trade the paper's
closed form is for, and it holds.

**Where it loses.** K-FAC matches or beats fisher_sym on the plain and the wide tasks at about
the same cost per step. On digits (ReLU, real data, standardized pixels that are far from
Gaussian) every method overfits (training losses one to two orders of magnitude below the
validation loss), the tuning criterion picks learning rates that stop early, and the
differences between the best methods are within the spread over seeds; fisher_sym's `scale`
mode is at the top there, but its `moments` mode and K-FAC are at the bottom. A first version
of the wide task (arg-max labels of a teacher drawn with σ_w = 1.5, 4096 samples) overfitted
within two epochs for every method and all validation losses agreed within their spreads; we
replaced it by the regression task above, which measures training rather than generalization.
The quasi-diagonal method is the weakest natural-gradient method on the student–teacher tasks.
The last column counts the grid points that diverged: every method but Adam diverged somewhere
on its grid, and the natural-gradient methods built on estimates (fisher_sym included) on a
good part of it. On the student–teacher tasks fisher_sym's tuned damping is mostly below the
original grid, where the extension took it (edge: the smallest value tried): its blocks are in
closed form and of full rank (A00 > 0), so, unlike the blocks estimated from a mini-batch, they
need no damping to be invertible.

**Caveats.** The networks are small so that the exact natural gradient fits, and the
block-diagonal structure is a statement about wide networks; one tuning seed per grid point;
learning rates and dampings fixed over training (no schedules, no momentum for the
natural-gradient methods); the times are single-threaded CPU times, and on a GPU or with wide
layers the balance between overhead and arithmetic is different.

## What we would try next

- The comparison per second on layers wide enough for the O(n) update to matter (the
  784-1024-1024-10 network of `python -m benchmarks --training`), on a GPU, where the sampled
  backward and the hooks are no longer the whole step.
- `factor_every > 1` for fisher_sym (and K-FAC's inverses refreshed every few steps), which
  takes the extra backward out of most steps.
- Momentum and a learning-rate schedule on top of each natural-gradient direction; a smaller
  damping grid for fisher_sym, until its choice is interior.
- The distance between each method's update and the exact natural gradient along the same
  trajectory, to separate the error of the block-diagonal approximation from the noise of the
  mini-batch estimates.
- More than one tuning seed, longer runs, and a larger real data set (MNIST-sized), which this
  offline machine cannot fetch.
- fisher_sym's `mean_field` mode (the paper's algorithm with no statistics at all) on a chain
  of `ResidualBlock`s only: our residual network has a trained linear read-out, which that mode
  does not cover.""",
}
