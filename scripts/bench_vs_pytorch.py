"""PyTorch CPU side of `scripts/bench_vs_pytorch.sh`: the same rows as sgm-nets' `conv` bench
and `cargo xtask bench` (networks, train step), on the official score_sde_pytorch models
(forward; forward + backward of mean(out²); the reference's own train step `losses.get_step_fn`
= loss + backward + `optimization_manager` (warm-up, clip, Adam) + EMA update), batch 8, 32×32,
medians after one warm-up. Prints `ROW <name> <seconds>` lines.

Usage: python bench_vs_pytorch.py REF_CHECKOUT [ITERS]
       python bench_vs_pytorch.py REF_CHECKOUT ITERS --cuda BATCH
REF_CHECKOUT = a checkout of yang-song/score_sde_pytorch. Its `op` package builds CUDA
extensions at import; on CPU the reference only uses `upfirdn2d_native`, so this script loads
just those two functions from `op/upfirdn2d.py`.

`--cuda BATCH` is the PyTorch side of `crates/sgm-train/benches/gpu.rs` (scripts/gpu_check.sh):
the same rows at batch BATCH on the GPU, PyTorch's defaults (cuDNN, TF32 convolutions),
`ROW torch_<name> <median ms> <min ms>` after 3 warm-ups, each run ending with
`torch.cuda.synchronize()`. FIR resampling there also runs `upfirdn2d_native` (the reference's
compiled CUDA kernel is not built: it needs a JIT compile at import); the networks' FIR layers are
a small share of their time.
"""

import ast
import statistics
import sys
import time
import types

import torch


def stub_op(ref):
    """A CPU-only `op` package: `upfirdn2d_native` from the reference source, and `upfirdn2d` as the
    reference's CPU branch of it on every device (its GPU branch needs the compiled extension)."""
    src = open(f"{ref}/op/upfirdn2d.py").read()
    tree = ast.parse(src)
    keep = [
        n
        for n in tree.body
        if isinstance(n, (ast.Import, ast.ImportFrom))
        and "cpp_extension" not in ast.unparse(n)
        or isinstance(n, ast.FunctionDef)
        and n.name in ("upfirdn2d", "upfirdn2d_native")
    ]
    mod = types.ModuleType("op")
    exec(compile(ast.Module(body=keep, type_ignores=[]), "op/upfirdn2d.py", "exec"), mod.__dict__)
    native = mod.upfirdn2d_native

    def upfirdn2d(input, kernel, up=1, down=1, pad=(0, 0)):
        # the reference's CPU branch of `upfirdn2d`, on every device (no compiled extension)
        return native(input, kernel, up, up, down, down, pad[0], pad[1], pad[0], pad[1])

    mod.upfirdn2d = upfirdn2d
    sys.modules["op"] = mod


def median_time(iters, fn):
    fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def step(y):
    y.square().mean().backward()


def gpu_ms(warm, iters, fn):
    """(median, min) ms of `iters` runs after `warm` warm-ups, each ending with a device sync."""
    for _ in range(warm):
        fn()
        torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), min(ts)


def gpu_main(ref, iters, batch, device="cuda"):
    """The rows of `crates/sgm-train/benches/gpu.rs` (same inputs, same names) on the reference."""
    sys.path.insert(0, ref)
    stub_op(ref)
    from configs.ve import cifar10_ncsnpp_deep_continuous as ncsnpp_deep
    from configs.vp import cifar10_ddpmpp_continuous as ddpmpp
    from models import ncsnpp

    dev = torch.device(device)
    warm = 3
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}, batch {batch}, "
          f"{iters} timed runs after {warm} warm-ups, ms (median, min); "
          f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
          f"cudnn.benchmark={torch.backends.cudnn.benchmark}")

    def pattern(shape, seed):
        n = 1
        for d in shape:
            n *= d
        v = ((torch.arange(n, dtype=torch.float64) + seed) * 7919 % 251) / 125.5 - 1.0
        return v.float().reshape(shape).to(dev)

    def row(name, fn):
        med, mn = gpu_ms(warm, iters, fn)
        print(f"ROW torch_{name} {med:.3f} {mn:.3f}", flush=True)

    x = pattern([batch, 128, 32, 32], 1)
    w = (pattern([128, 128, 3, 3], 2) * 0.03).contiguous()
    dy = pattern([batch, 128, 32, 32], 3)
    conv_bwd = torch.ops.aten.convolution_backward
    args = ([1, 1], [1, 1], [1, 1], False, [0, 0], 1)
    row("conv_fwd", lambda: torch.nn.functional.conv2d(x, w, padding=1))
    row("conv_bwd_data", lambda: conv_bwd(dy, x, w, None, *args, [True, False, False]))
    row("conv_bwd_weight", lambda: conv_bwd(dy, x, w, None, *args, [False, True, False]))
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(dev)
    xa = x.clone().requires_grad_()
    row("conv_fwdbwd", lambda: (conv(xa) * dy).sum().backward())
    layers = []
    for _ in range(4):
        layers += [torch.nn.Conv2d(128, 128, 3, padding=1), torch.nn.GroupNorm(32, 128), torch.nn.SiLU()]
    stack = torch.nn.Sequential(*layers).to(dev)
    xs = pattern([batch, 128, 32, 32], 4).requires_grad_()
    row("stack", lambda: stack(xs).square().mean().backward())

    sig = torch.tensor([0.01 + (i % 16) * 3.0 for i in range(batch)], device=dev)
    img = pattern([batch, 3, 32, 32], 5)
    for name, cfg_mod in (("ncsnpp_deep", ncsnpp_deep), ("ddpmpp", ddpmpp)):
        cfg = cfg_mod.get_config()
        cfg.device = dev
        net = ncsnpp.NCSNpp(cfg).to(dev)
        net.eval()
        with torch.no_grad():
            row(f"{name}_fwd", lambda: net(img, sig))
        batch_img = pattern([batch, 3, 32, 32], 6) * 0.5
        med, mn = gpu_ms(warm, iters, reference_step(cfg_mod, cfg.model.nf, batch_img, dev))
        print(f"ROW torch_{name}_step {med:.3f} {mn:.3f}", flush=True)


def main():
    ref = sys.argv[1]
    if "--cuda" in sys.argv:
        batch = int(sys.argv[sys.argv.index("--cuda") + 1])
        gpu_main(ref, int(sys.argv[2]), batch)
        return
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(2)
    sys.path.insert(0, ref)
    stub_op(ref)
    from configs.ve import cifar10_ncsnpp_deep_continuous as ncsnpp_deep
    from configs.vp import cifar10_ddpmpp_continuous as ddpmpp
    from models import ncsnpp

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {iters} iterations")
    x = (torch.arange(8 * 128 * 32 * 32) * 7919 % 251).float().div(125.5).sub(1.0)
    x = x.reshape(8, 128, 32, 32).requires_grad_()

    conv = torch.nn.Conv2d(128, 128, 3, padding=1)
    print(f"ROW conv3x3 {median_time(iters + 2, lambda: step(conv(x))):.4f}")
    layers = []
    for _ in range(4):
        layers += [torch.nn.Conv2d(128, 128, 3, padding=1), torch.nn.GroupNorm(32, 128), torch.nn.SiLU()]
    stack = torch.nn.Sequential(*layers)
    print(f"ROW stack {median_time(iters + 2, lambda: step(stack(x))):.4f}")

    img = (torch.arange(8 * 3 * 32 * 32) * 7919 % 251).float().div(251.0).reshape(8, 3, 32, 32)
    sig = torch.tensor([0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0])
    rows = [
        ("ncsnpp32", ncsnpp_deep, 32),
        ("ncsnpp128", ncsnpp_deep, 128),
        ("ddpmpp32", ddpmpp, 32),
        ("ddpmpp128", ddpmpp, 128),
    ]
    for name, cfg_mod, nf in rows:
        cfg = cfg_mod.get_config()
        cfg.model.nf = nf
        cfg.model.dropout = 0.0
        cfg.device = torch.device("cpu")
        net = ncsnpp.NCSNpp(cfg)
        net.eval()
        with torch.no_grad():
            fwd = median_time(iters, lambda: net(img, sig))
        net.train()
        fb = median_time(iters, lambda: step(net(img, sig)))
        print(f"ROW {name}_fwd {fwd:.4f}")
        print(f"ROW {name}_fwdbwd {fb:.4f}")
    for name, cfg_mod, nf in rows:
        print(f"ROW {name}_train {train_step_time(cfg_mod, nf, img, iters):.4f}")


def train_step_time(cfg_mod, nf, img, iters):
    """Median seconds of the reference's `get_step_fn(train=True)` step: the official config
    (dropout as configured) with `nf` set, batch 8, Adam + warm-up + clipping + EMA."""
    return median_time(iters, reference_step(cfg_mod, nf, img, torch.device("cpu")))


def reference_step(cfg_mod, nf, img, device):
    """A closure running one reference training step (`losses.get_step_fn(train=True)`: loss,
    backward, `optimization_manager` warm-up + clipping + Adam, EMA) of the official config with
    `nf` set, on `img`'s batch, on `device`."""
    import losses
    import sde_lib
    from models import ncsnpp
    from models.ema import ExponentialMovingAverage

    cfg = cfg_mod.get_config()
    cfg.model.nf = nf
    cfg.training.batch_size = img.shape[0]
    cfg.device = device
    if cfg.training.sde == "vesde":
        sde = sde_lib.VESDE(cfg.model.sigma_min, cfg.model.sigma_max, cfg.model.num_scales)
    else:
        sde = sde_lib.VPSDE(cfg.model.beta_min, cfg.model.beta_max, cfg.model.num_scales)
    net = ncsnpp.NCSNpp(cfg).to(device)
    ema = ExponentialMovingAverage(net.parameters(), decay=cfg.model.ema_rate)
    optimizer = losses.get_optimizer(cfg, net.parameters())
    state = dict(optimizer=optimizer, model=net, ema=ema, step=0)
    step_fn = losses.get_step_fn(
        sde,
        train=True,
        optimize_fn=losses.optimization_manager(cfg),
        reduce_mean=cfg.training.reduce_mean,
        continuous=cfg.training.continuous,
        likelihood_weighting=cfg.training.likelihood_weighting,
    )
    batch = img * 2.0 - 1.0 if cfg.data.centered else img
    return lambda: step_fn(state, batch)


if __name__ == "__main__":
    main()
