"""Export trained networks (training/.cache/{causal,offline}[.K].pt) to the shipped numpy weights.

Writes nsplayer/models/weights/``learned.WEIGHTS``: per network, the input normalization,
the convolution and read-out weights as float32, the dilations and the look-ahead in frames,
under the keys ``causal/...``, ``offline/...`` and, for a mode's further members,
``offline.1/...`` that ``nsplayer.models.learned`` reads. Then checks that numpy inference
matches torch on a random input.

Run: ``python -m training.export``
"""

from __future__ import annotations

import numpy as np
import torch

from nsplayer.models import learned
from training.train import RECIPES, Net, checkpoint

OUT = learned.WEIGHTS_DIR / learned.WEIGHTS


def head(mode: str, member: int) -> str:
    return mode if member == 0 else f"{mode}.{member}"


def arrays(mode: str, member: int = 0) -> dict[str, np.ndarray]:
    ckpt = torch.load(checkpoint(mode, member), weights_only=False)
    h = head(mode, member)
    out = {f"{h}/{k.replace('convs.', 'conv')}": v for k, v in ckpt["state"].items()}
    out[f"{h}/mean"] = ckpt["mean"]
    out[f"{h}/std"] = ckpt["std"]
    out[f"{h}/dilations"] = np.array(ckpt["dilations"])
    out[f"{h}/lookahead"] = np.array(ckpt["lookahead"])
    return {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in out.items()}


def check(mode: str, member: int, w: dict[str, np.ndarray]) -> float:
    """Largest difference between torch and the numpy network on 300 random frames."""
    ckpt = torch.load(checkpoint(mode, member), weights_only=False)
    net = Net(len(ckpt["mean"]), ckpt["channels"], ckpt["dilations"])
    net.load_state_dict({k: torch.from_numpy(v) for k, v in ckpt["state"].items()})
    net.eval()  # no dropout
    x = np.random.default_rng(0).normal(-30, 15, (300, len(ckpt["mean"]))).astype(np.float32)
    with torch.no_grad():
        ref = torch.softmax(net(torch.from_numpy((x - ckpt["mean"]) / ckpt["std"])[None])[0], 1)
    numpy_net = learned._Net(w, f"{head(mode, member)}/")
    got = np.concatenate([numpy_net.run(x[:123]), numpy_net.run(x[123:])])
    return float(np.abs(got - ref.numpy()).max())


def main() -> None:
    nets = [(mode, k) for mode, recipe in RECIPES.items() for k in range(recipe.members)]
    w = {}
    for mode, member in nets:
        w.update(arrays(mode, member))
    for mode, member in nets:
        diff = check(mode, member, w)
        print(f"{head(mode, member)}: numpy vs torch max |diff| {diff:.2e}")
    np.savez_compressed(OUT, **w)
    print(f"{sum(v.size for v in w.values())} values -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
