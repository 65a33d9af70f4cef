"""The command line of fisher_sym: derive an activation and emit its kernels into generated/."""
