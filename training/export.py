"""Export trained networks (training/.cache/{causal,offline}.pt) to the shipped numpy weights.

Writes nsplayer/models/weights/``learned.WEIGHTS``: per mode, the input normalization, the
convolution and read-out weights as float32, the dilations and the look-ahead in frames,
under the keys ``causal/...`` and ``offline/...`` that ``nsplayer.models.learned`` reads.
Then checks that numpy inference matches torch on a random input.

Run: ``python -m training.export``
"""

from __future__ import annotations

import numpy as np
import torch

from nsplayer.models import learned
from training.train import CACHE, Net

OUT = learned.WEIGHTS_DIR / learned.WEIGHTS


def arrays(mode: str) -> dict[str, np.ndarray]:
    ckpt = torch.load(CACHE / f"{mode}.pt", weights_only=False)
    out = {f"{mode}/{k.replace('convs.', 'conv')}": v for k, v in ckpt["state"].items()}
    out[f"{mode}/mean"] = ckpt["mean"]
    out[f"{mode}/std"] = ckpt["std"]
    out[f"{mode}/dilations"] = np.array(ckpt["dilations"])
    out[f"{mode}/lookahead"] = np.array(ckpt["lookahead"])
    return {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in out.items()}


def check(mode: str, w: dict[str, np.ndarray]) -> float:
    """Largest difference between torch and the numpy network on 300 random frames."""
    ckpt = torch.load(CACHE / f"{mode}.pt", weights_only=False)
    net = Net(len(ckpt["mean"]), ckpt["channels"], ckpt["dilations"])
    net.load_state_dict({k: torch.from_numpy(v) for k, v in ckpt["state"].items()})
    net.eval()  # no dropout
    x = np.random.default_rng(0).normal(-30, 15, (300, len(ckpt["mean"]))).astype(np.float32)
    with torch.no_grad():
        ref = torch.softmax(net(torch.from_numpy((x - ckpt["mean"]) / ckpt["std"])[None])[0], 1)
    numpy_net = learned._Net(w, f"{mode}/")
    got = np.concatenate([numpy_net.run(x[:123]), numpy_net.run(x[123:])])
    return float(np.abs(got - ref.numpy()).max())


def main() -> None:
    w = {}
    for mode in ("causal", "offline"):
        w.update(arrays(mode))
    for mode in ("causal", "offline"):
        print(f"{mode}: numpy vs torch max |diff| {check(mode, w):.2e}")
    np.savez_compressed(OUT, **w)
    print(f"{sum(v.size for v in w.values())} values -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
