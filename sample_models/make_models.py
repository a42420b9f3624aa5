"""Regenerate the sample models and data files in this folder.

Usage (from the repo root): .venv/bin/python sample_models/make_models.py
Needs: pip install torch==2.13.0 scikit-learn onnx onnxruntime
"""

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

OUT = Path(__file__).resolve().parent
N_CALIB = 128
N_TEST_B = 300  # 3x32x32 float32 does not compress well: keep model B's test file < 1 MB

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)


# ----------------------------------------------------------------------------- data
def digits_split():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # [N,1,8,8] in 0..1
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)


def colourize(x8, rng, noise=0.0):
    """8x8 grey digits -> [N,3,32,32] colour images, normalised with (p/255 - 0.5) / 0.5.

    Bilinear upsample, then paint a per-sample foreground colour (warm: high R, low B)
    over a per-sample background colour (cool: low R, high B), G is random in both.
    The channels therefore carry different content and their order matters.
    """
    n = len(x8)
    mask = F.interpolate(torch.from_numpy(x8), size=32, mode="bilinear", align_corners=False)
    fg = rng.uniform([0.6, 0.2, 0.0], [1.0, 0.8, 0.4], (n, 3))[:, :, None, None]
    bg = rng.uniform([0.0, 0.2, 0.6], [0.4, 0.8, 1.0], (n, 3))[:, :, None, None]
    img = bg + (fg - bg) * mask.numpy() + rng.normal(0.0, noise, (n, 3, 32, 32))
    pixels = np.clip(np.round(img * 255), 0, 255)  # what an 8-bit RGB image would hold
    return ((pixels / 255 - 0.5) / 0.5).astype(np.float32)


# ----------------------------------------------------------------------------- models
def digits_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )  # fmt: skip


def conv_bn(cin, cout, k, stride=1, groups=1):
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(cout)]


class DSBlock(nn.Module):
    """Depthwise 3x3 + BN + ReLU6, then pointwise 1x1 + BN (linear bottleneck).

    Adds the input back (inverted-residual style) when the shapes match.
    """

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(
            *conv_bn(cin, cin, 3, stride, groups=cin), nn.ReLU6(), *conv_bn(cin, cout, 1)
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_digits():
    return nn.Sequential(
        *conv_bn(3, 16, 3, stride=2), nn.ReLU6(),  # 16x16
        DSBlock(16, 32, 2),  # 8x8
        DSBlock(32, 32, 1),  # 8x8, residual Add
        DSBlock(32, 64, 2),  # 4x4
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 10),
    )  # fmt: skip


# ----------------------------------------------------------------------------- train / eval
def train(model, x, y, epochs, lr, make_batch=None):
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * -(-len(x) // 64))
    model.train()
    for _ in range(epochs):
        xe = make_batch() if make_batch else x  # fresh augmentation each epoch
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = F.cross_entropy(model(torch.from_numpy(xe[idx])), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def torch_acc(model, x, y):
    return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def ort_predict(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(["logits"], {"input": s[None]})[0] for s in x])


def export(model, name, x_test, y_test, x_calib, y_calib):
    path = OUT / f"{name}.onnx"
    example = torch.from_numpy(x_test[:1])
    with warnings.catch_warnings():  # the legacy exporter warns that it is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model.eval(), example, str(path), dynamo=False, opset_version=17,
            input_names=["input"], output_names=["logits"], do_constant_folding=True,
        )  # fmt: skip
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert not list(OUT.glob("*.onnx.data")), "external data written"
    assert path.stat().st_size < 1_000_000, f"{path.name} too large"
    np.savez_compressed(OUT / f"{name}.npz", input=x_test, labels=y_test)
    np.savez_compressed(OUT / f"{name}_calib.npz", input=x_calib, labels=y_calib)

    logits = ort_predict(str(path), x_test)
    with torch.no_grad():
        ref = model(torch.from_numpy(x_test)).numpy()
    t_acc, o_acc = torch_acc(model, x_test, y_test), float((logits.argmax(1) == y_test).mean())
    n_params = sum(p.numel() for p in model.parameters())
    ops = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
    print(f"{name}: params={n_params} onnx={path.stat().st_size} B ops={ops}")
    print(f"  test n={len(y_test)}  torch acc={t_acc:.4f}  onnxruntime acc={o_acc:.4f}  "
          f"max|dlogit|={np.abs(logits - ref).max():.2e}")  # fmt: skip
    assert t_acc == o_acc, "ONNX and torch accuracy differ"
    return path


def main():
    x_tr, x_te, y_tr, y_te = digits_split()
    calib = np.random.default_rng(0).choice(len(x_tr), N_CALIB, replace=False)

    torch.manual_seed(0)
    cnn = train(digits_cnn(), x_tr, y_tr, epochs=40, lr=1e-2)
    export(cnn, "digits_cnn", x_te, y_te, x_tr[calib], y_tr[calib])

    rng = np.random.default_rng(1)
    xb_tr, xb_te_all = colourize(x_tr, rng), colourize(x_te, rng)
    xb_te, yb_te = xb_te_all[:N_TEST_B], y_te[:N_TEST_B]
    aug_rng = np.random.default_rng(2)
    torch.manual_seed(0)
    mnet = train(mobilenet_digits(), xb_tr, y_tr, epochs=40, lr=1e-2,
                 make_batch=lambda: colourize(x_tr, aug_rng, noise=0.03))  # fmt: skip
    path = export(mnet, "mobilenet_digits", xb_te, yb_te, xb_tr[calib], y_tr[calib])

    print(f"  full test split n={len(y_te)}  torch acc={torch_acc(mnet, xb_te_all, y_te):.4f}")

    # Layout sanity: the channels must matter, so wrong layouts must hurt accuracy.
    bgr = ort_predict(str(path), np.ascontiguousarray(xb_te[:, ::-1]))
    nhwc = ort_predict(str(path), xb_te.transpose(0, 2, 3, 1).reshape(xb_te.shape))
    print(f"  BGR instead of RGB acc={(bgr.argmax(1) == yb_te).mean():.4f}  "
          f"NHWC bytes read as NCHW acc={(nhwc.argmax(1) == yb_te).mean():.4f}")  # fmt: skip

    for f in sorted(OUT.iterdir()):
        if f.suffix in {".onnx", ".npz"}:
            print(f"{f.name:32s} {f.stat().st_size:>9,d} B")


if __name__ == "__main__":
    main()
