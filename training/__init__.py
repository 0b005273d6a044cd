"""How the learned model's weights are made (dev-only: needs the ``[train]`` extra)."""
