"""Where jaxpara's train step spends its time on CPU, and what changes it (issue 15).

    python benchmarks/profile_cpu.py breakdown --models acrnn,blstm_fcn [--rounds 3]
    python benchmarks/profile_cpu.py variants --models moma \
        --variants lstm_unroll=2,lstm_unroll=4 [--rounds 3]
    python benchmarks/profile_cpu.py ops [--rounds 3]

Every figure is a ratio from alternating rounds within one process (the CPU
is shared); medians over rounds, one warm-up call excluded. `--out` writes
the JSON (default benchmarks/results/profile_<mode>_cpu.json).

* breakdown: per model, JAX and torch timed for (a) the train-mode forward,
  (b) forward + backward (value_and_grad of the engine's loss), (c) the full
  train step (`vs_pytorch.Pair`). (c) - (b) is the optimizer update and
  metrics, (b) - (a) the backward pass.
* variants: the engine's train step as built today ("base") against the same
  step traced with one change applied by monkeypatching (jaxpara itself is
  untouched): `lstm_unroll=N` (`lax.scan(..., unroll=N)` in
  jaxpara.models.recurrent), `lstm_autodiff` (the LSTM recurrence's gradient
  by autodiff of the scan instead of `recurrent.recurrence`'s VJP),
  `convlstm_no_remat` (the ConvLSTM's im2col conv
  without `jax.checkpoint`), `convlstm_lax_conv` (`lax.conv_general_dilated`
  instead of im2col), `vmap_seeds` (the engine's vmapped S = 1 step with
  `state.select`, as `train_fold` runs it). The torch eager step of the same
  model is timed in the same rounds for the ratio.
* ops: single convolutions at the models' shapes, JAX (NHWC, as flax) against
  torch (NCHW): forward, input gradient and kernel gradient separately, plus
  JAX with NCHW dimension numbers and the kernel gradient of
  `jaxpara.models.conv` (chunked shifted matmuls); and an LSTM layer (scan) against
  torch.nn.LSTM, forward and forward + backward (the jaxpara LSTM at scan
  unroll 1 and 4, with its `recurrent.recurrence` VJP).

XLA:CPU flags are process-wide, so they are compared by running
`vs_pytorch.py` once per XLA_FLAGS setting (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import machine_info, utc_now, write_result  # noqa: E402


def alternate(fns: dict, rounds: int, steps: int = 1, label: str = "") -> dict:
    """{name: [mean step time of each round]}; order reversed every round."""
    for fn in fns.values():  # Warm-up.
        fn()
    times = {n: [] for n in fns}
    names = list(fns)
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            time.sleep(0.05)
            start = time.perf_counter()
            for _ in range(steps):
                fn = fns[n]
                fn()
            times[n].append((time.perf_counter() - start) / steps)
        print(
            f"  {label} round {r + 1}: "
            + ", ".join(f"{n} {times[n][-1]:.4f}s" for n in names),
            file=sys.stderr,
            flush=True,
        )
    return times


def summarise(times: dict, base: str) -> dict:
    med = {n: float(np.median(t)) for n, t in times.items()}
    return {
        n: {
            "step_s_median": round(med[n], 5),
            "step_s_rounds": [round(x, 5) for x in t],
            f"speedup_vs_{base}": round(med[base] / med[n], 4),
        }
        for n, t in times.items()
    }


# ------------------------------------------------------------ breakdown


def _loss_fns(pair):
    """JAX forward and value_and_grad of the engine's loss, jitted."""
    import optax

    model, batch = pair.jax_model, pair.batch
    from jaxpara import models

    def loss(params, batch_stats, rng):
        outputs, _ = model.apply(
            {"params": params, "batch_stats": batch_stats},
            batch["inputs"],
            frames=batch["frames"],
            gender=batch["gender"],
            train=True,
            rngs={"dropout": rng},
            mutable=["batch_stats"],
        )
        logits, aux = models.split_outputs(outputs)
        total = 0.0
        for out in (logits, *aux):
            total = total + jnp.mean(
                optax.softmax_cross_entropy_with_integer_labels(out, batch["label"])
            )
        return total

    fwd = jax.jit(loss)
    grad = jax.jit(jax.value_and_grad(loss))
    return fwd, grad


def breakdown(args) -> dict:
    from vs_pytorch import MODELS, build_pair

    out = {}
    for key in args.models.split(","):
        out[key] = _breakdown_one(
            build_pair(key, args.batch or MODELS[key].batch, args.dtype), args
        )
        jax.clear_caches()
    return out


def _breakdown_one(pair, args) -> dict:
    import torch.nn.functional as F

    key = pair.key
    fwd, grad = _loss_fns(pair)

    def jax_args():
        return pair.state.params, pair.state.batch_stats, pair.rng

    def torch_loss():
        pair.torch_model.train()
        o = pair.torch_model(*pair.torch_inputs)
        outs = o if isinstance(o, tuple) else (o,)
        return sum(F.cross_entropy(x, pair.labels) for x in outs)

    def torch_fwd():
        with torch.no_grad():
            torch_loss()

    def torch_grad():
        pair.torch_model.zero_grad(set_to_none=True)
        torch_loss().backward()

    fns = {
        "jax_forward": lambda: jax.block_until_ready(fwd(*jax_args())),
        "jax_fwd_bwd": lambda: jax.block_until_ready(grad(*jax_args())),
        "jax_train_step": pair.jax_train_step,
        "torch_forward": torch_fwd,
        "torch_fwd_bwd": torch_grad,
        "torch_train_step": pair.torch_train_step,
    }
    times = alternate(fns, args.rounds, label=key)
    med = {n: float(np.median(t)) for n, t in times.items()}
    entry = {n: round(v, 5) for n, v in med.items()}
    for side in ("jax", "torch"):
        entry[f"{side}_backward_s"] = round(
            med[f"{side}_fwd_bwd"] - med[f"{side}_forward"], 5
        )
        entry[f"{side}_update_s"] = round(
            med[f"{side}_train_step"] - med[f"{side}_fwd_bwd"], 5
        )
    for part in ("forward", "fwd_bwd", "train_step", "backward_s", "update_s"):
        j = entry.get(f"jax_{part}", entry.get(f"jax_{part}"))
        t = entry.get(f"torch_{part}")
        if j and t and j > 0 and t > 0:
            entry[f"torch_over_jax_{part}"] = round(t / j, 3)
    entry["rounds"] = {n: [round(x, 5) for x in t] for n, t in times.items()}
    entry["batch"] = pair.batch_size
    return entry


# ------------------------------------------------------------ variants


@contextlib.contextmanager
def patched(variant: str):
    """Applies one variant to jaxpara's modules while tracing."""
    from jaxpara.models import convlstm, recurrent

    saved = []

    def patch(obj, name, value):
        saved.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    name, _, value = variant.partition("=")
    if name == "lstm_unroll":
        real_scan = jax.lax.scan
        unroll = int(value)

        class _Lax:
            def __getattr__(self, attr):
                return getattr(jax.lax, attr)

            @staticmethod
            def scan(*a, **kw):
                kw["unroll"] = unroll
                return real_scan(*a, **kw)

        class _Jax:
            lax = _Lax()

            def __getattr__(self, attr):
                return getattr(jax, attr)

        patch(recurrent, "jax", _Jax())
    elif name == "lstm_autodiff":

        def recurrence(projected, mask, kernel, dtype=jnp.float32, unroll=1):
            return recurrent._forward(projected, mask, kernel, dtype, unroll)[:2]

        patch(recurrent, "recurrence", recurrence)
    elif name == "convlstm_no_remat":

        def conv(inputs, kernel):
            patches = convlstm._patches(inputs, *kernel.shape[:2])
            return jnp.dot(
                patches,
                kernel.reshape(-1, kernel.shape[-1]),
                preferred_element_type=jnp.float32,
            )

        patch(convlstm, "_im2col_conv", conv)
    elif name == "convlstm_lax_conv":

        def conv2d_same(inputs, kernel, dtype):
            return jax.lax.conv_general_dilated(
                inputs.astype(dtype),
                kernel.astype(dtype),
                (1, 1),
                "SAME",
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                preferred_element_type=jnp.float32,
            )

        patch(convlstm, "conv2d_same", conv2d_same)
    elif name == "conv_chunked_dkernel":
        import flax.linen.linear as flax_linear

        from jaxpara.models import conv as conv_lib

        class _LaxConv:
            conv_general_dilated = staticmethod(conv_lib.conv_general_dilated)

            def __getattr__(self, attr):
                return getattr(jax.lax, attr)

        patch(flax_linear, "lax", _LaxConv())
    elif name == "pool_reshape":
        from jaxpara.models import layers

        def max_pool(x, window, strides=None, padding="VALID"):
            """Window = stride max pool as pad (-inf) + reshape + max."""
            window = tuple(window)
            if tuple(strides or window) != window:
                return nn_max_pool(x, window, strides, padding)
            pads = [(0, 0)] + [(0, -n % w) for n, w in zip(x.shape[1:-1], window)]
            x = jnp.pad(x, pads + [(0, 0)], constant_values=-jnp.inf)
            shape = [x.shape[0]]
            for n, w in zip(x.shape[1:-1], window):
                shape += [n // w, w]
            x = x.reshape(*shape, x.shape[-1])
            return x.max(axis=tuple(range(2, 2 * len(window) + 1, 2)))

        import flax.linen as flax_nn

        nn_max_pool = flax_nn.max_pool

        class _Nn:
            def __getattr__(self, attr):
                return getattr(flax_nn, attr)

        proxy = _Nn()
        proxy.max_pool = max_pool
        patch(layers, "nn", proxy)
    elif name not in ("base", "vmap_seeds"):
        raise ValueError(f"unknown variant {variant!r}")
    try:
        yield
    finally:
        for obj, attr, old in reversed(saved):
            setattr(obj, attr, old)


def _vmapped_step(pair, tx):
    """The engine's vmapped S = 1 step with `select`, as train_fold runs it."""
    from _common import engine_steps

    from jaxpara import state as state_lib

    train_step, _, _ = engine_steps()
    weights = jnp.ones(pair.spec.num_classes, jnp.float32)

    def step_fn(state, batch, rng, active):
        new_state, metrics = train_step(
            state, batch, rng, model=pair.jax_model, tx=tx, weights=weights
        )
        return state_lib.select(active, new_state, state), metrics

    step = jax.jit(jax.vmap(step_fn, in_axes=(0, None, 0, 0)), donate_argnums=(0,))
    state = jax.tree_util.tree_map(lambda x: x[None], pair.state)
    rng = jax.random.key(1)[None]
    active = jnp.ones((1,), bool)
    compiled = step.lower(state, pair.batch, rng, active).compile()
    holder = {"state": state}

    def run():
        holder["state"], _ = compiled(holder["state"], pair.batch, rng, active)
        jax.block_until_ready(holder["state"])

    return run


def variants(args) -> dict:
    from _common import build_train_step
    from vs_pytorch import MODELS, build_pair

    from jaxpara import state as state_lib

    out = {}
    for key in args.models.split(","):
        pair = build_pair(key, args.batch or MODELS[key].batch, args.dtype)
        tx = state_lib.make_optimizer(pair.config.train)
        fns = {"base": pair.jax_train_step, "torch": pair.torch_train_step}
        compile_s = {"base": round(pair.compile_train_s, 2)}
        for variant in args.variants.split(","):
            start = time.perf_counter()
            with patched(variant):
                if variant == "vmap_seeds":
                    fns[variant] = _vmapped_step(pair, tx)
                else:
                    built = build_train_step(
                        pair.jax_model,
                        tx,
                        pair.shape,
                        pair.spec.num_classes,
                        batch_size=pair.batch_size,
                    )

                    def run(built=built):
                        built["state"], _ = built["compiled"](
                            built["state"], built["batch"], built["rng"]
                        )
                        jax.block_until_ready(built["state"])

                    fns[variant] = run
            compile_s[variant] = round(time.perf_counter() - start, 2)
        times = alternate(fns, args.rounds, label=key)
        entry = summarise(times, "base")
        med_torch = float(np.median(times["torch"]))
        for n in fns:
            if n != "torch":
                entry[n]["ratio_jax_over_torch_examples_per_s"] = round(
                    med_torch / float(np.median(times[n])), 4
                )
        out[key] = {"batch": pair.batch_size, "compile_s": compile_s, **entry}
        del pair, fns
        jax.clear_caches()
    return out


# ------------------------------------------------------------ ops


CONV_SHAPES = {
    # name: (batch, time, freq, c_in, c_out, kh, kw), from the models' layers.
    "acrnn_block0_conv1": (32, 300, 40, 32, 32, 3, 3),
    "acrnn_block1_conv1": (32, 150, 20, 64, 64, 3, 3),
    "fcn_conv1": (32, 250, 20, 64, 128, 3, 3),
    "cnn_bilstm_conv2": (8, 150, 20, 256, 256, 5, 3),
    "resnet_stage1": (32, 16, 51, 64, 64, 3, 3),
}


def conv_ops(rounds: int) -> dict:
    out = {}
    for name, shape in CONV_SHAPES.items():
        out[name] = _conv_op(name, shape, rounds)
        jax.clear_caches()
    return out


def _conv_op(name, shape, rounds) -> dict:
    from jaxpara.models import conv as conv_lib

    b, h, w, cin, cout, kh, kw = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(b, h, w, cin)).astype(np.float32)
    k = rng.normal(size=(kh, kw, cin, cout)).astype(np.float32) * 0.05
    pad = ((kh // 2, kh // 2), (kw // 2, kw // 2))

    def conv_nhwc(x, k):
        return jax.lax.conv_general_dilated(
            x, k, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    def conv_nchw(x, k):
        return jax.lax.conv_general_dilated(
            x, k, (1, 1), pad, dimension_numbers=("NCHW", "OIHW", "NCHW")
        )

    jx, jk = jnp.asarray(x), jnp.asarray(k)
    jxc, jkc = (
        jnp.asarray(x.transpose(0, 3, 1, 2)),
        jnp.asarray(k.transpose(3, 2, 0, 1)),
    )
    g = jnp.ones((b, h, w, cout), jnp.float32)
    gc = jnp.ones((b, cout, h, w), jnp.float32)

    def grads(conv, x, k, g):
        _, vjp = jax.vjp(conv, x, k)
        return vjp(g)

    f_nhwc = jax.jit(conv_nhwc)
    dx_nhwc = jax.jit(lambda x, k, g: grads(conv_nhwc, x, k, g)[0])
    dk_nhwc = jax.jit(lambda x, k, g: grads(conv_nhwc, x, k, g)[1])
    dk_chunked = jax.jit(
        lambda x, k, g: grads(
            lambda x, k: conv_lib.conv_general_dilated(
                x, k, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC")
            ),
            x,
            k,
            g,
        )[1]
    )
    f_nchw = jax.jit(conv_nchw)
    dx_nchw = jax.jit(lambda x, k, g: grads(conv_nchw, x, k, g)[0])
    dk_nchw = jax.jit(lambda x, k, g: grads(conv_nchw, x, k, g)[1])

    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    tk = torch.from_numpy(k.transpose(3, 2, 0, 1).copy()).requires_grad_(True)
    tpad = (kh // 2, kw // 2)
    tg = torch.ones(b, cout, h, w)

    def t_fwd():
        with torch.no_grad():
            torch.nn.functional.conv2d(tx, tk, padding=tpad)

    def t_dx():
        torch.nn.grad.conv2d_input(tx.shape, tk, tg, padding=tpad)

    def t_dk():
        torch.nn.grad.conv2d_weight(tx, tk.shape, tg, padding=tpad)

    fns = {
        "jax_nhwc_fwd": lambda: f_nhwc(jx, jk).block_until_ready(),
        "jax_nhwc_dinput": lambda: dx_nhwc(jx, jk, g).block_until_ready(),
        "jax_nhwc_dkernel": lambda: dk_nhwc(jx, jk, g).block_until_ready(),
        "jax_chunked_dkernel": lambda: dk_chunked(jx, jk, g).block_until_ready(),
        "jax_nchw_fwd": lambda: f_nchw(jxc, jkc).block_until_ready(),
        "jax_nchw_dinput": lambda: dx_nchw(jxc, jkc, gc).block_until_ready(),
        "jax_nchw_dkernel": lambda: dk_nchw(jxc, jkc, gc).block_until_ready(),
        "torch_fwd": t_fwd,
        "torch_dinput": t_dx,
        "torch_dkernel": t_dk,
    }
    times = alternate(fns, rounds, label=name)
    med = {n: float(np.median(t)) for n, t in times.items()}
    flops = 2.0 * b * h * w * cin * cout * kh * kw
    entry = {
        "shape_bhwc_cin_cout_k": [b, h, w, cin, cout, kh, kw],
        "gflop": flops / 1e9,
    }
    for n, v in med.items():
        entry[n] = {"s": round(v, 5), "gflop_per_s": round(flops / v / 1e9, 1)}
    entry["torch_over_jax_chunked_dkernel"] = round(
        med["torch_dkernel"] / med["jax_chunked_dkernel"], 3
    )
    for part in ("fwd", "dinput", "dkernel"):
        entry[f"torch_over_jax_nhwc_{part}"] = round(
            med[f"torch_{part}"] / med[f"jax_nhwc_{part}"], 3
        )
    return entry


def lstm_ops(rounds: int) -> dict:
    out = {}
    for name, shape in {
        "acrnn_lstm": (32, 150, 256, 128),
        "blstm_fcn_layer1": (32, 500, 256, 128),
        "moma_layer1": (32, 300, 1024, 512),
    }.items():
        out[name] = _lstm_op(name, shape, rounds)
        jax.clear_caches()
    return out


def _lstm_op(name, shape, rounds) -> dict:
    from jaxpara.models.recurrent import LSTM

    b, t, d, h = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(b, t, d)).astype(np.float32)
    res = {}
    for unroll in (1, 4):
        mod = LSTM(h, unroll=unroll)
        params = mod.init(jax.random.key(0), jnp.asarray(x[:1]))

        def loss(p, x, mod=mod):
            return jnp.sum(mod.apply(p, x)[0])

        res[unroll] = (
            jax.jit(lambda p, x, mod=mod: mod.apply(p, x)[0]),
            jax.jit(jax.grad(loss)),
            params,
        )
    jx = jnp.asarray(x)
    lstm = torch.nn.LSTM(d, h, batch_first=True)
    tx = torch.from_numpy(x)

    def t_fwd():
        with torch.no_grad():
            lstm(tx)

    def t_grad():
        lstm.zero_grad(set_to_none=True)
        lstm(tx)[0].sum().backward()

    fns = {}
    for unroll, (fwd, grad, params) in res.items():
        fns[f"jax_unroll{unroll}_fwd"] = lambda f=fwd, p=params: f(
            p, jx
        ).block_until_ready()
        fns[f"jax_unroll{unroll}_fwd_bwd"] = lambda g=grad, p=params: (
            jax.block_until_ready(g(p, jx))
        )
    fns["torch_fwd"] = t_fwd
    fns["torch_fwd_bwd"] = t_grad
    times = alternate(fns, rounds, label=name)
    med = {n: float(np.median(v)) for n, v in times.items()}
    flops = 2.0 * b * t * 4 * h * (d + h)
    entry = {"b_t_d_h": [b, t, d, h], "gflop_fwd": flops / 1e9}
    entry.update({n: round(v, 5) for n, v in med.items()})
    entry["torch_over_jax_fwd"] = round(med["torch_fwd"] / med["jax_unroll1_fwd"], 3)
    entry["torch_over_jax_fwd_bwd"] = round(
        med["torch_fwd_bwd"] / med["jax_unroll1_fwd_bwd"], 3
    )
    return entry


def trace(args) -> dict:
    """Per-XLA-op wall time of the JAX train step from a jax.profiler trace.

    Run with XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true so XLA:CPU emits
    one trace event per thunk (fusion, convolution, dot, while, ...). Events
    are summed by name over `--rounds` steps and grouped by kind.
    """
    import glob
    import gzip
    import json
    import re
    import tempfile

    from vs_pytorch import MODELS, build_pair

    out = {}
    for key in args.models.split(","):
        pair = build_pair(key, args.batch or MODELS[key].batch, args.dtype)
        pair.jax_train_step()
        logdir = tempfile.mkdtemp(prefix=f"trace_{key}_")
        start = time.perf_counter()
        with jax.profiler.trace(logdir, create_perfetto_trace=True):
            for _ in range(args.rounds):
                pair.jax_train_step()
        wall = (time.perf_counter() - start) / args.rounds
        (path,) = glob.glob(f"{logdir}/**/*.trace.json.gz", recursive=True)
        events = json.loads(gzip.open(path).read())
        events = events["traceEvents"] if isinstance(events, dict) else events
        by_name, by_kind = {}, {}
        for e in events:
            if e.get("ph") != "X" or "dur" not in e:
                continue
            name = e.get("name", "")
            by_name[name] = by_name.get(name, 0.0) + e["dur"] / 1e6 / args.rounds
        for name, dur in by_name.items():
            kind = re.sub(r"[._]?\d+$", "", name.split(":")[0])
            by_kind[kind] = by_kind.get(kind, 0.0) + dur
        top = sorted(by_name.items(), key=lambda kv: -kv[1])[:40]
        out[key] = {
            "step_wall_s": round(wall, 4),
            "top_events_s": {k: round(v, 4) for k, v in top},
            "by_kind_s": {
                k: round(v, 4)
                for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])[:25]
            },
        }
        del pair
        jax.clear_caches()
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("breakdown", "variants", "ops", "trace"))
    parser.add_argument("--models", default="acrnn")
    parser.add_argument("--variants", default="lstm_unroll=4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--ops", default="conv,lstm")
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    if args.mode == "breakdown":
        result = breakdown(args)
    elif args.mode == "variants":
        result = variants(args)
    elif args.mode == "trace":
        result = trace(args)
    else:
        result = {}
        if "conv" in args.ops:
            result["conv"] = conv_ops(args.rounds)
        if "lstm" in args.ops:
            result["lstm"] = lstm_ops(args.rounds)
    out = args.out or f"benchmarks/results/profile_{args.mode}_cpu.json"
    return write_result(
        {
            args.mode: result,
            "args": vars(args),
            "machine": machine_info(
                load_before,
                torch=torch.__version__,
                xla_flags=os.environ.get("XLA_FLAGS", ""),
            ),
            "date": utc_now(),
        },
        out,
    )


if __name__ == "__main__":
    main()
