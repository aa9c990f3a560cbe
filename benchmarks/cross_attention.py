"""Cross-attention to soft tokens: the fused Triton kernel vs torch SDPA, forward and backward.

The model issue's workload: B = 16, H = 8, Lq = 2,048, D = 120, Lk = 10, bf16. Reported per
pass: time (median of CUDA-event timings, ``triton.testing.do_bench``), and the effective
bandwidth — the bytes the operation must move at least, over its time:

* forward: read q, k, v; write o;
* backward: read q, k, v, dO; write dq, dk, dv.

The same byte counts are used for SDPA and the kernel, so the ratio of bandwidths is the
ratio of speeds. A second case packs 8 subjects per row (each with its own 10 soft tokens):
the kernel reads per-query segment ids; SDPA needs the keys of all 8 subjects and a
[B, 1, Lq, 80] boolean mask (what the model did before the kernel).

    python benchmarks/cross_attention.py --json out.json     # on a GPU
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from gpu_timing import timed_ms  # benchmarks/gpu_timing.py, beside this script

from ehrfast.model.kernels.cross_attention import cross_attention


def make_case(args, n_segments: int, device):
    gen = torch.Generator(device=device).manual_seed(0)
    b, h, lq, d, lk = args.batch, args.heads, args.queries, args.head_dim, args.keys
    dtype = getattr(torch, args.dtype)
    # q as the model makes it: a head view [B, H, L, D] of a [B, L, H·D] projection
    q = torch.randn(b, lq, h, d, device=device, generator=gen).to(dtype).transpose(1, 2).requires_grad_()
    k = torch.randn(b, n_segments, h, lk, d, device=device, generator=gen).to(dtype).requires_grad_()
    v = torch.randn(b, n_segments, h, lk, d, device=device, generator=gen).to(dtype).requires_grad_()
    seg = (torch.arange(lq, device=device) * n_segments // lq).expand(b, lq).contiguous()
    return q, k, v, seg


def kernel_call(q, k, v, seg):
    segments = seg if k.shape[1] > 1 else None
    return lambda: cross_attention(q, k, v, segments, backend="triton")


def sdpa_call(q, k, v, seg):
    """SDPA over all segments' keys behind a segment mask (a plain call for one segment)."""
    b, s, h, lk, d = k.shape
    if s == 1:
        return lambda: F.scaled_dot_product_attention(q, k[:, 0], v[:, 0])
    keys = k.permute(0, 2, 1, 3, 4).reshape(b, h, s * lk, d)
    values = v.permute(0, 2, 1, 3, 4).reshape(b, h, s * lk, d)
    mask = (seg[:, :, None] == torch.arange(s, device=q.device).repeat_interleave(lk))[:, None]
    return lambda: F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)


def bytes_moved(q, k) -> dict:
    element = q.element_size()
    qo = q.numel() * element
    kv = k.numel() * element
    return {"forward": 2 * qo + 2 * kv, "backward": 3 * qo + 4 * kv}


def measure(name, call, q, k, v) -> dict:
    out = call()
    grad = torch.randn_like(out)
    forward_ms = timed_ms(call)

    def backward():
        torch.autograd.grad(out, (q, k, v), grad, retain_graph=True)

    backward_ms = timed_ms(backward)
    moved = bytes_moved(q, k)
    return {"name": name, "forward_ms": forward_ms, "backward_ms": backward_ms,
            "forward_tbs": moved["forward"] / forward_ms / 1e9, "backward_tbs": moved["backward"] / backward_ms / 1e9}


def check_agreement(q, k, v, seg) -> dict:
    """Kernel vs SDPA on this workload: max relative difference of output and gradients."""
    leaves = (q, k, v)
    got = kernel_call(q, k, v, seg)()
    want = sdpa_call(q, k, v, seg)()
    grad = torch.randn_like(got)
    grads_got = torch.autograd.grad(got, leaves, grad)
    grads_want = torch.autograd.grad(want, leaves, grad)
    rel = {}
    for name, a, b in zip(("out", "dq", "dk", "dv"), (got, *grads_got), (want, *grads_want)):
        rel[name] = float((a.float() - b.float()).abs().max() / b.float().abs().max())
    return rel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--queries", type=int, default=2048)
    ap.add_argument("--head-dim", type=int, default=120)
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--packed-subjects", type=int, default=8)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--hbm-tbs", type=float, default=3.35, help="the GPU's memory bandwidth (H100 SXM: 3.35)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (the kernel's CPU path is Triton's interpreter, for tests only)")
    device = torch.device("cuda")
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "workload": vars(args), "cases": []}
    for n_segments in (1, args.packed_subjects):
        q, k, v, seg = make_case(args, n_segments, device)
        case = {"segments_per_row": n_segments, "agreement": check_agreement(q, k, v, seg)}
        sdpa = measure("sdpa", sdpa_call(q, k, v, seg), q, k, v)
        fused = measure("triton", kernel_call(q, k, v, seg), q, k, v)
        case.update(sdpa=sdpa, triton=fused, forward_speedup=sdpa["forward_ms"] / fused["forward_ms"],
                    backward_speedup=sdpa["backward_ms"] / fused["backward_ms"],
                    forward_roofline=fused["forward_tbs"] / args.hbm_tbs, backward_roofline=fused["backward_tbs"] / args.hbm_tbs)
        results["cases"].append(case)
        print(f"{n_segments} segment(s)/row  agreement {case['agreement']}")
        for r in (sdpa, fused):
            print(f"  {r['name']:7s} forward {r['forward_ms'] * 1e3:8.1f} µs {r['forward_tbs']:5.2f} TB/s   "
                  f"backward {r['backward_ms'] * 1e3:8.1f} µs {r['backward_tbs']:5.2f} TB/s")
        print(f"  speed-up forward {case['forward_speedup']:.2f}×, backward {case['backward_speedup']:.2f}×; "
              f"kernel at {case['forward_roofline']:.0%} / {case['backward_roofline']:.0%} of {args.hbm_tbs} TB/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
