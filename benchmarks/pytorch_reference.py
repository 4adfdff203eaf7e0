"""PyTorch references of jaxpara's seven benchmarked models (cards C1-C5).

    python benchmarks/pytorch_reference.py [--models acrnn fusion ...]

Written from /work/shared/SPEC.md's cards with jaxpara's implementation choices,
so that the maths is the same and a timing compares implementations, not
models. Each torch module is named like its flax counterpart (`cnn.block0.conv0`
<-> `cnn/block0/conv0`), so `load_flax_variables` copies a jaxpara checkpoint
into it; run as a script this builds every model on both sides at the paper
config's width and input shape, prints both parameter counts (asserted within
2 %, in practice equal) and the largest difference of the eval-mode logits on
a random batch with the jaxpara weights copied over.

Conventions shared by all models here:

* inputs are [batch, channels, time, freq] (torch's NCHW; jaxpara's
  [batch, time, freq, channels] permuted once, outside any timed step);
* every segment is full length (the benchmarks feed no padding), so jaxpara's
  masks are all True and are left out: masked BatchNorm statistics, masked
  softmaxes and length-aware LSTMs reduce to the plain torch ops;
* LSTMs are `torch.nn.LSTM` (gate order [i, f, g, o], as jaxpara) with
  `bias_hh` frozen at zero: jaxpara's LSTM has one bias, so the trainable
  parameters and the maths match; the forget-gate bias starts at 1.0;
* BatchNorm: eps 1e-5, momentum 0.1 (= flax 0.9); convolutions before a
  BatchNorm have no bias; SAME pools are `ceil_mode=True` max pools.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------ layers


class LSTMStack(nn.Module):
    """`torch.nn.LSTM` with one (input-side) bias, as jaxpara's LSTM.

    `flax_layout` says how the flax tree at the same path is laid out:
    'lstm' (`recurrent.LSTM`: input/{kernel,bias}, recurrent_kernel),
    'bilstm' (`BiLSTM`: forward/..., backward/...) or 'stacked'
    (`StackedLSTM`: layer_<i>/{forward,backward}/... or layer_<i>/...).
    """

    def __init__(
        self,
        input_size: int,
        hidden: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        flax_layout: str = "stacked",
        forget_bias: float = 1.0,
    ):
        super().__init__()
        self.flax_layout = flax_layout
        self.hidden = hidden
        self.rnn = nn.LSTM(
            input_size,
            hidden,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
        )
        with torch.no_grad():
            for name, p in self.rnn.named_parameters():
                if name.startswith("bias_hh"):
                    p.zero_()
                    p.requires_grad_(False)
                elif name.startswith("bias_ih"):
                    p.zero_()
                    p[hidden : 2 * hidden] = forget_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, time, dim] -> [batch, time, hidden * directions]."""
        return self.rnn(x)[0]

    def flax_paths(self):
        """(torch suffix, flax sub-path) for every layer and direction."""
        rnn = self.rnn
        for layer in range(rnn.num_layers):
            for d, direction in enumerate(
                ("forward", "backward")[: 1 + rnn.bidirectional]
            ):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                if self.flax_layout == "lstm":
                    path = ()
                elif self.flax_layout == "bilstm":
                    path = (direction,)
                elif rnn.bidirectional:
                    path = (f"layer_{layer}", direction)
                else:
                    path = (f"layer_{layer}",)
                yield suffix, path


class TemporalAttention(nn.Module):
    """score_t = v^T tanh(W h_t [+ b]); alpha = softmax_t; sum_t alpha_t h_t."""

    def __init__(self, dim: int, features: int, bias: bool = True):
        super().__init__()
        self.proj = nn.Linear(dim, features, bias=bias)
        self.score = nn.Linear(features, 1, bias=False)

    def forward(self, x):
        alpha = torch.softmax(self.score(torch.tanh(self.proj(x)))[..., 0], dim=1)
        return torch.einsum("bt,btd->bd", alpha, x)


class ResidualBlock(nn.Module):
    """conv -> BN -> ReLU (= a) -> conv -> BN -> + a -> ReLU (card C1)."""

    def __init__(self, cin: int, features: int, kernel=(3, 3)):
        super().__init__()
        pad = (kernel[0] // 2, kernel[1] // 2)
        self.conv0 = nn.Conv2d(cin, features, kernel, padding=pad, bias=False)
        self.bn0 = nn.BatchNorm2d(features)
        self.conv1 = nn.Conv2d(features, features, kernel, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm2d(features)

    def forward(self, x):
        skip = F.relu(self.bn0(self.conv0(x)))
        return F.relu(self.bn1(self.conv1(skip)) + skip)


class ConvFrontEnd(nn.Module):
    """Card C1's shared CNN: residual blocks, 2x2 pool then 1x2 pools."""

    def __init__(self, cin: int, features: Sequence[int] = (32, 64)):
        super().__init__()
        self.pools = [(2, 2)] + [(1, 2)] * (len(features) - 1)
        for i, width in enumerate(features):
            setattr(self, f"block{i}", ResidualBlock(cin, width))
            cin = width
        self.num_blocks = len(features)

    def forward(self, x):
        for i in range(self.num_blocks):
            x = getattr(self, f"block{i}")(x)
            x = F.max_pool2d(x, self.pools[i], self.pools[i], ceil_mode=True)
        return x


def frames_of(x: torch.Tensor) -> torch.Tensor:
    """[batch, C, T, F] -> [batch, T, F * C] (jaxpara's reshape order)."""
    b, c, t, f = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, t, f * c)


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


# ------------------------------------------------------------------ card C1


class ACRNNHead(nn.Module):
    """Frame dense -> (Bi)LSTM -> temporal attention -> dense head -> logits."""

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        frame_features=256,
        frame_activation="relu",
        lstm_features=128,
        bidirectional=False,
        attention_features=64,
        attention_bias=True,
        head_features=64,
        dropout=0.2,
    ):
        super().__init__()
        if frame_activation not in ("relu", "linear"):
            raise ValueError(f"frame_activation={frame_activation!r}")
        self.frame_activation = frame_activation
        self.frame = nn.Linear(in_dim, frame_features)
        self.lstm = LSTMStack(
            frame_features,
            lstm_features,
            bidirectional=bidirectional,
            flax_layout="bilstm" if bidirectional else "lstm",
        )
        width = lstm_features * (2 if bidirectional else 1)
        self.attention = TemporalAttention(width, attention_features, attention_bias)
        self.head = nn.Linear(width, head_features)
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Linear(head_features, num_classes)

    def forward(self, features):
        x = self.frame(frames_of(features))
        if self.frame_activation == "relu":
            x = F.relu(x)
        x = self.attention(self.lstm(x))
        return self.logits(self.dropout(F.relu(self.head(x))))


class ACRNN(ACRNNHead):
    """Card C1's ACRNN: ConvFrontEnd + the ACRNNHead layers in one flat tree
    (frame, lstm, attention, head, logits next to cnn, as jaxpara)."""

    def __init__(self, in_shape, num_classes, conv_features=(32, 64), **head):
        t, f, c = in_shape
        freq = math.ceil(f / 2 ** len(conv_features))
        super().__init__(freq * conv_features[-1], num_classes, **head)
        self.cnn = ConvFrontEnd(c, conv_features)

    def forward(self, x):
        return super().forward(self.cnn(x))


class AttentiveConvLSTM(nn.Module):
    """Card C1's attentive ConvLSTM over T_s re-reads of one map (SAM).

    Z = R_a * tanh(W_a * X + b_a + U_a * H); A = softmax over positions;
    gates [i, f, o, g] = W * (A . X) + b + U * H; the two H-side convs run as
    one conv (`hidden`), as jaxpara does.
    """

    def __init__(self, channels, features=128, kernel=3, iterations=4, att=None):
        super().__init__()
        att = features if att is None else att
        pad = kernel // 2
        self.features, self.att, self.iterations = features, att, iterations
        self.gates_input = nn.Conv2d(channels, 4 * features, kernel, padding=pad)
        self.attention_input = nn.Conv2d(channels, att, kernel, padding=pad)
        self.hidden = nn.Conv2d(
            features, att + 4 * features, kernel, padding=pad, bias=False
        )
        self.attention_score = nn.Conv2d(att, 1, 1, bias=False)
        with torch.no_grad():
            self.gates_input.bias.zero_()
            self.gates_input.bias[features : 2 * features] = 1.0

    def forward(self, x):
        b, _, h, w = x.shape
        input_term = self.attention_input(x)
        cell = out = x.new_zeros(b, self.features, h, w)
        for _ in range(self.iterations):
            from_hidden = self.hidden(out)
            z = torch.tanh(input_term + from_hidden[:, : self.att])
            scores = self.attention_score(z).reshape(b, h * w)
            alpha = torch.softmax(scores, dim=1).reshape(b, 1, h, w)
            gates = self.gates_input(alpha * x) + from_hidden[:, self.att :]
            i, f, o, g = torch.chunk(gates, 4, dim=1)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            out = torch.sigmoid(o) * torch.tanh(cell)
        return out


class SACRNNHead(nn.Module):
    """ConvLSTM -> global average pool -> dense head -> logits."""

    def __init__(
        self,
        channels,
        num_classes,
        convlstm_features=128,
        convlstm_kernel_size=3,
        convlstm_iterations=4,
        head_features=64,
        dropout=0.2,
    ):
        super().__init__()
        self.convlstm = AttentiveConvLSTM(
            channels, convlstm_features, convlstm_kernel_size, convlstm_iterations
        )
        self.head = nn.Linear(convlstm_features, head_features)
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Linear(head_features, num_classes)

    def forward(self, features):
        pooled = self.convlstm(features).mean(dim=(2, 3))
        return self.logits(self.dropout(F.relu(self.head(pooled))))


class SACRNNACRNNFusion(nn.Module):
    """Shared CNN -> SACRNN and ACRNN branches; log of the mean posterior.

    Returns (fused, sacrnn, acrnn) logits; the engine's loss with
    `fusion_loss='fused_and_branches'` sums one cross-entropy per entry.
    """

    def __init__(
        self,
        in_shape,
        num_classes,
        conv_features=(32, 64),
        sacrnn=None,
        acrnn=None,
        fusion_loss="fused_and_branches",
    ):
        super().__init__()
        t, f, c = in_shape
        self.cnn = ConvFrontEnd(c, conv_features)
        freq = math.ceil(f / 2 ** len(conv_features))
        self.sacrnn = SACRNNHead(conv_features[-1], num_classes, **(sacrnn or {}))
        self.acrnn = ACRNNHead(freq * conv_features[-1], num_classes, **(acrnn or {}))
        self.fusion_loss = fusion_loss

    def forward(self, x):
        x = self.cnn(x)
        s, a = self.sacrnn(x), self.acrnn(x)
        logp = torch.stack([F.log_softmax(s, -1), F.log_softmax(a, -1)])
        fused = torch.logsumexp(logp, dim=0) - math.log(2.0)
        if self.fusion_loss == "fused":
            return fused
        return fused, s, a


# ------------------------------------------------------------------ card C2


class ResidualAttention(nn.Module):
    """SE / spatial / se_spatial / component attention on a residual branch."""

    def __init__(self, kind: str, channels: int, reduction: int = 16):
        super().__init__()
        self.kind = kind
        if kind in ("se", "se_spatial"):
            self.se = nn.Module()
            self.se.squeeze = nn.Linear(channels, max(1, channels // reduction))
            self.se.excite = nn.Linear(max(1, channels // reduction), channels)
        if kind in ("spatial", "se_spatial"):
            self.spatial = nn.Module()
            self.spatial.conv = nn.Conv2d(channels, 1, 1)
        if kind == "component":
            self.component = nn.Module()
            self.component.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        if self.kind == "component":
            return torch.sigmoid(self.component.conv(x)) * x
        weight = None
        if self.kind in ("se", "se_spatial"):
            s = x.mean(dim=(2, 3))
            s = torch.sigmoid(self.se.excite(F.relu(self.se.squeeze(s))))
            weight = s[:, :, None, None]
        if self.kind in ("spatial", "se_spatial"):
            sp = torch.sigmoid(self.spatial.conv(x))
            weight = sp if weight is None else weight * sp
        return weight * x


class BasicBlock(nn.Module):
    def __init__(self, cin, features, stride, attention, reduction):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, features, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(features)
        self.conv2 = nn.Conv2d(features, features, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(features)
        self.attention = (
            ResidualAttention(attention, features, reduction)
            if attention != "none"
            else None
        )
        self.downsample_conv = self.downsample_bn = None
        if cin != features or stride != 1:
            self.downsample_conv = nn.Conv2d(cin, features, 1, stride, bias=False)
            self.downsample_bn = nn.BatchNorm2d(features)

    def forward(self, x):
        branch = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.attention is not None:
            branch = self.attention(branch)
        shortcut = x
        if self.downsample_conv is not None:
            shortcut = self.downsample_bn(self.downsample_conv(x))
        return F.relu(branch + shortcut)


class ResNet(nn.Module):
    """Card C2's ResNet-18 (torchvision layout) with per-block attention."""

    def __init__(
        self,
        in_shape,
        num_classes,
        attention="none",
        stage_features=(64, 128, 256, 512),
        blocks_per_stage=(2, 2, 2, 2),
        stem="7x7",
        se_reduction=16,
        attention_stages=(1, 2, 3, 4),
    ):
        super().__init__()
        cin = in_shape[2]
        k, s = (7, 2) if stem == "7x7" else (3, 1)
        self.stem_conv = nn.Conv2d(cin, stage_features[0], k, s, k // 2, bias=False)
        self.stem_bn = nn.BatchNorm2d(stage_features[0])
        self.stem_pool = stem == "7x7"
        self.blocks = []
        cin = stage_features[0]
        for stage, (width, blocks) in enumerate(
            zip(stage_features, blocks_per_stage), start=1
        ):
            att = attention if stage in attention_stages else "none"
            for block in range(blocks):
                stride = 2 if stage > 1 and block == 0 else 1
                name = f"stage{stage}_block{block}"
                setattr(self, name, BasicBlock(cin, width, stride, att, se_reduction))
                self.blocks.append(name)
                cin = width
        self.logits = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem_conv(x)))
        if self.stem_pool:
            x = F.max_pool2d(x, 3, 2, 1)
        for name in self.blocks:
            x = getattr(self, name)(x)
        return self.logits(x.mean(dim=(2, 3)))


# ------------------------------------------------------------------ card C3


class AttentionBLSTM(nn.Module):
    def __init__(self, in_dim, lstm_features=128, num_layers=2, bidirectional=True):
        super().__init__()
        self.lstm = LSTMStack(in_dim, lstm_features, num_layers, bidirectional)
        self.attention = nn.Module()
        width = lstm_features * (2 if bidirectional else 1)
        self.attention.score = nn.Linear(width, 1, bias=False)

    def forward(self, x):
        y = self.lstm(frames_of(x))
        alpha = torch.softmax(self.attention.score(y)[..., 0], dim=1)
        return torch.einsum("bt,btd->bd", alpha, y)


class AttentionFCN(nn.Module):
    def __init__(
        self,
        cin,
        conv_features=(64, 128, 128),
        dropout=0.2,
        attention_features=64,
        attention_scale=0.3,
    ):
        super().__init__()
        self.num = len(conv_features)
        for i, width in enumerate(conv_features):
            setattr(self, f"conv{i}", nn.Conv2d(cin, width, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(width))
            cin = width
        self.drop = nn.Dropout(dropout)
        self.attention = nn.Module()
        self.attention.proj = nn.Linear(cin, attention_features)
        self.attention.score = nn.Linear(attention_features, 1, bias=False)
        self.scale = attention_scale

    def forward(self, x):
        for i in range(self.num):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
            x = self.drop(F.max_pool2d(x, 2, 2, ceil_mode=True))
        cells = x.flatten(2).transpose(1, 2)  # [B, L = T' * F', C]
        e = self.attention.score(torch.tanh(self.attention.proj(cells)))[..., 0]
        alpha = torch.softmax(self.scale * e, dim=1)
        return torch.einsum("bl,bld->bd", alpha, cells)


class AttentionBLSTMFCN(nn.Module):
    """Card C3: Attention-BLSTM || Attention-FCN -> concat -> DNN -> logits."""

    def __init__(
        self,
        in_shape,
        num_classes,
        lstm_features=128,
        blstm_layers=2,
        conv_features=(64, 128, 128),
        attention_features=64,
        fcn_attention_scale=0.3,
        fcn_dropout=0.2,
        head_features=128,
        head_layers=2,
        dropout=0.2,
    ):
        super().__init__()
        t, f, c = in_shape
        self.blstm = AttentionBLSTM(f * c, lstm_features, blstm_layers, True)
        self.fcn = AttentionFCN(
            c, conv_features, fcn_dropout, attention_features, fcn_attention_scale
        )
        width = 2 * lstm_features + conv_features[-1]
        self.heads = []
        for i in range(head_layers):
            setattr(self, f"head_{i}", nn.Linear(width, head_features))
            self.heads.append(f"head_{i}")
            width = head_features
        self.drop = nn.Dropout(dropout)
        self.logits = nn.Linear(width, num_classes)

    def forward(self, x):
        h = torch.cat([self.blstm(x), self.fcn(x)], dim=-1)
        for name in self.heads:
            h = self.drop(F.relu(getattr(self, name)(h)))
        return self.logits(h)


# ------------------------------------------------------------------ card C4


class MeanContextAttention(nn.Module):
    """E = tanh(W_h y_t) * tanh(W_m mean_t(Y)); softmax_t(W_e E) (no biases)."""

    def __init__(self, dim, features=128):
        super().__init__()
        self.hidden = nn.Linear(dim, features, bias=False)
        self.context = nn.Linear(dim, features, bias=False)
        self.score = nn.Linear(features, 1, bias=False)

    def forward(self, y):
        ctx = torch.tanh(self.context(y.mean(dim=1, keepdim=True)))
        e = torch.tanh(self.hidden(y)) * ctx
        return torch.softmax(self.score(e)[..., 0], dim=1)


class MOMA(nn.Module):
    """Card C4: BLSTM 2 x 512 -> attention 1 (residual) -> MOMA mixture."""

    def __init__(
        self,
        in_shape,
        num_classes,
        lstm_features=512,
        blstm_layers=2,
        moma_attention_features=128,
        moma_blocks=3,
        moma_mixture="raw",
        moma_projection_features=1024,
        dropout=0.0,
    ):
        super().__init__()
        t, f, c = in_shape
        dim = 2 * lstm_features
        self.encoder = LSTMStack(f * c, lstm_features, blstm_layers, True)
        self.attention1 = MeanContextAttention(dim, moma_attention_features)
        self.moma = nn.Module()
        self.moma.gamma = nn.Parameter(torch.rand(moma_blocks))
        for n in range(moma_blocks):
            setattr(
                self.moma,
                f"block{n}",
                MeanContextAttention(dim, moma_attention_features),
            )
        self.blocks, self.mixture = moma_blocks, moma_mixture
        self.projection = nn.Linear(dim, moma_projection_features)
        self.drop = nn.Dropout(dropout)
        self.logits = nn.Linear(moma_projection_features, num_classes)

    def forward(self, x):
        y = self.encoder(frames_of(x))
        y = y + self.attention1(y)[..., None] * y
        blocks = torch.stack(
            [getattr(self.moma, f"block{n}")(y) for n in range(self.blocks)], dim=1
        )
        gamma = self.moma.gamma
        if self.mixture == "softmax":
            gamma = torch.softmax(gamma, 0)
        a_mix = torch.einsum("n,bnt->bt", gamma, blocks)
        pooled = torch.einsum("bt,btd->bd", a_mix, y)
        return self.logits(self.drop(F.relu(self.projection(pooled))))


# ------------------------------------------------------------------ card C5


class LocalSelfAttention(nn.Module):
    """keras SeqSelfAttention (additive), width-limited window, as jaxpara.

    Computes the full [B, T, T, U] additive scores and masks outside the
    window, as jaxpara's `LocalSelfAttention` does.
    """

    def __init__(self, dim, width=15, features=32, activation="relu"):
        super().__init__()
        self.query = nn.Linear(dim, features, bias=False)
        self.key = nn.Linear(dim, features)
        self.score = nn.Linear(features, 1)
        self.width, self.activation = width, activation

    def forward(self, x):
        t = x.shape[1]
        h = torch.tanh(self.query(x)[:, :, None, :] + self.key(x)[:, None, :, :])
        e = self.score(h)[..., 0]
        if self.activation != "none":
            e = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[
                self.activation
            ](e)
        steps = torch.arange(t, device=x.device)
        lower = steps[:, None] - self.width // 2
        window = (steps[None, :] >= lower) & (steps[None, :] < lower + self.width)
        weights = torch.softmax(e.masked_fill(~window, float("-inf")), dim=-1)
        return weights @ x


class CNNBiLSTM(nn.Module):
    """Card C5: 6 conv (5x3) -> Dense 768 -> BiLSTM 128 -> attention (+ gender)."""

    def __init__(
        self,
        in_shape,
        num_classes,
        conv_features=(128, 256, 256, 256, 256, 256),
        conv_kernel=(5, 3),
        frame_features=768,
        lstm_features=128,
        attention="local_self",
        attention_features=64,
        local_attention_width=15,
        local_attention_features=32,
        local_attention_activation="relu",
        use_gender=True,
        gender_embedding=300,
        gender_features=64,
        head_features=64,
        dropout=0.2,
    ):
        super().__init__()
        t, f, c = in_shape
        self.cnn = nn.Module()
        pad = (conv_kernel[0] // 2, conv_kernel[1] // 2)
        cin = c
        for i, width in enumerate(conv_features):
            setattr(
                self.cnn,
                f"conv{i}",
                nn.Conv2d(cin, width, conv_kernel, padding=pad, bias=False),
            )
            setattr(self.cnn, f"bn{i}", nn.BatchNorm2d(width))
            cin = width
        self.num_conv = len(conv_features)
        self.frame = nn.Linear(math.ceil(f / 2) * cin, frame_features)
        self.lstm = LSTMStack(
            frame_features, lstm_features, 1, True, flax_layout="bilstm"
        )
        dim = 2 * lstm_features
        self.kind = attention
        if attention == "temporal":
            self.attention = TemporalAttention(dim, attention_features)
        else:
            self.attention = LocalSelfAttention(
                dim,
                local_attention_width,
                local_attention_features,
                local_attention_activation,
            )
        self.use_gender = use_gender
        if use_gender:
            self.gender = nn.Module()
            self.gender.embed = nn.Embedding(2, gender_embedding)
            self.gender.dense = nn.Linear(gender_embedding, gender_features)
            dim += gender_features
        self.head = nn.Linear(dim, head_features)
        self.drop = nn.Dropout(dropout)
        self.logits = nn.Linear(head_features, num_classes)

    def forward(self, x, gender=None):
        for i in range(self.num_conv):
            x = F.relu(getattr(self.cnn, f"bn{i}")(getattr(self.cnn, f"conv{i}")(x)))
            if i == 0:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        y = self.lstm(self.frame(frames_of(x)))
        if self.kind == "temporal":
            pooled = self.attention(y)
        else:
            pooled = self.attention(y).mean(dim=1)
        if self.use_gender:
            if gender is None:
                gender = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            g = self.gender.dense(self.gender.embed(gender))
            pooled = torch.cat([pooled, g], dim=-1)
        return self.logits(self.drop(F.relu(self.head(pooled))))


# ------------------------------------------------------------------ building


def build(
    config, num_classes: int, in_shape, *, frame_activation="relu", attention_bias=True
) -> nn.Module:
    """The torch reference of `config.model` (a jaxpara ConfigDict).

    Args:
        config: the full jaxpara config (`config.model` is read).
        num_classes: K.
        in_shape: (time, freq, channels) of one example.
        frame_activation: ACRNN frame projection, 'relu' | 'linear' (card C1
            says linear; pass what the jaxpara model does).
        attention_bias: ACRNN temporal attention's tanh layer has a bias.
    """
    m = config.model
    acrnn = dict(
        frame_features=m.frame_features,
        frame_activation=frame_activation,
        lstm_features=m.lstm_features,
        bidirectional=m.bidirectional,
        attention_features=m.attention_features,
        attention_bias=attention_bias,
        head_features=m.head_features,
        dropout=m.dropout,
    )
    if m.name == "acrnn":
        return ACRNN(in_shape, num_classes, tuple(m.conv_features), **acrnn)
    if m.name == "sacrnn_acrnn_fusion":
        if m.attention != "spatial":
            raise NotImplementedError("torch reference: attentive ConvLSTM only")
        sacrnn = dict(
            convlstm_features=m.convlstm.features,
            convlstm_kernel_size=m.convlstm.kernel_size,
            convlstm_iterations=m.convlstm.iterations,
            head_features=m.head_features,
            dropout=m.dropout,
        )
        return SACRNNACRNNFusion(
            in_shape, num_classes, tuple(m.conv_features), sacrnn, acrnn, m.fusion_loss
        )
    if m.name == "resnet18":
        r = m.resnet
        return ResNet(
            in_shape,
            num_classes,
            m.attention,
            tuple(r.stage_features),
            tuple(r.blocks_per_stage),
            r.stem,
            r.se_reduction,
            tuple(r.attention_stages),
        )
    if m.name == "attention_blstm_fcn":
        return AttentionBLSTMFCN(
            in_shape,
            num_classes,
            m.lstm_features,
            m.blstm.layers,
            tuple(m.conv_features),
            m.attention_features,
            m.fcn.attention_scale,
            m.fcn.dropout,
            m.head_features,
            m.head_layers,
            m.dropout,
        )
    if m.name == "moma":
        return MOMA(
            in_shape,
            num_classes,
            m.lstm_features,
            m.blstm.layers,
            m.moma.attention_features,
            m.moma.blocks,
            m.moma.mixture,
            m.moma.projection_features,
            m.dropout,
        )
    if m.name == "cnn_bilstm":
        la = m.local_attention
        return CNNBiLSTM(
            in_shape,
            num_classes,
            tuple(m.conv_features),
            tuple(m.conv_kernel),
            m.frame_features,
            m.lstm_features,
            m.attention,
            m.attention_features,
            la.width,
            la.features,
            la.activation,
            m.use_gender,
            m.gender.embedding,
            m.gender.features,
            m.head_features,
            m.dropout,
        )
    raise NotImplementedError(f"no torch reference for model.name={m.name!r}")


def count_params(model: nn.Module) -> int:
    """Trainable scalars (the frozen zero `bias_hh` of LSTMs excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_optimizer(model: nn.Module, train_cfg):
    """torch counterpart of `jaxpara.state.make_optimizer` (adam | nadam |
    nadam_keras: torch's NAdam schedule is Keras 2's, psi = schedule_decay).

    Returns (optimizer, scheduler or None, description). nadam is
    `torch.optim.NAdam` (Dozat's Nesterov Adam with torch's default
    momentum-decay schedule psi = 4e-3; optax.nadam has none): the same
    per-parameter elementwise work, slightly different numbers.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    lr = train_cfg.learning_rate
    if train_cfg.optimizer == "adam":
        try:
            opt = torch.optim.Adam(params, lr=lr, fused=True)
            desc = "torch.optim.Adam(fused=True)"
        except (RuntimeError, TypeError):
            opt = torch.optim.Adam(params, lr=lr, foreach=True)
            desc = "torch.optim.Adam(foreach=True)"
    elif train_cfg.optimizer == "nadam":
        opt = torch.optim.NAdam(params, lr=lr, foreach=True)
        desc = "torch.optim.NAdam(foreach=True)"
    elif train_cfg.optimizer == "nadam_keras":  # Keras' schedule is torch's.
        decay = train_cfg.nadam_schedule_decay
        opt = torch.optim.NAdam(
            params, lr=lr, eps=1e-7, momentum_decay=decay, foreach=True
        )
        desc = f"torch.optim.NAdam(eps=1e-7, momentum_decay={decay}, foreach=True)"
    else:
        raise ValueError(train_cfg.optimizer)
    sched = None
    if train_cfg.lr_decay > 0:
        decay = train_cfg.lr_decay
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 1.0 / (1.0 + decay * s)
        )
        desc += f" + LambdaLR(1 / (1 + {decay} step))"
    return opt, sched, desc


# ------------------------------------------------------- jaxpara weights in


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))


def load_flax_variables(model: nn.Module, variables: dict) -> None:
    """Copies jaxpara {"params", "batch_stats"} into `model` (same names).

    Raises KeyError when a torch module has no flax counterpart, so a silent
    mismatch cannot pass.
    """
    params, stats = variables["params"], variables.get("batch_stats", {})

    def at(tree, path):
        for key in path:
            tree = tree[key]
        return tree

    done = set()
    with torch.no_grad():
        for name, module in model.named_modules():
            if any(name.startswith(d + ".") for d in done):
                continue
            path = tuple(name.split(".")) if name else ()
            if isinstance(module, nn.Linear):
                p = at(params, path)
                module.weight.copy_(_t(p["kernel"]).T)
                if module.bias is not None:
                    module.bias.copy_(_t(p["bias"]))
            elif isinstance(module, nn.Conv2d):
                p = at(params, path)
                module.weight.copy_(_t(p["kernel"]).permute(3, 2, 0, 1))
                if module.bias is not None:
                    module.bias.copy_(_t(p["bias"]))
            elif isinstance(module, nn.BatchNorm2d):
                p, s = at(params, path), at(stats, path)
                module.weight.copy_(_t(p["scale"]))
                module.bias.copy_(_t(p["bias"]))
                module.running_mean.copy_(_t(s["mean"]))
                module.running_var.copy_(_t(s["var"]))
            elif isinstance(module, nn.Embedding):
                module.weight.copy_(_t(at(params, path)["embedding"]))
            elif isinstance(module, LSTMStack):
                base = at(params, path)
                for suffix, sub in module.flax_paths():
                    p = at(base, sub)
                    getattr(module.rnn, "weight_ih" + suffix).copy_(
                        _t(p["input"]["kernel"]).T
                    )
                    getattr(module.rnn, "bias_ih" + suffix).copy_(
                        _t(p["input"]["bias"])
                    )
                    getattr(module.rnn, "bias_hh" + suffix).zero_()
                    getattr(module.rnn, "weight_hh" + suffix).copy_(
                        _t(p["recurrent_kernel"]).T
                    )
                done.add(name)
            elif isinstance(module, AttentiveConvLSTM):
                p = at(params, path)

                def conv_w(k):
                    return _t(k).permute(3, 2, 0, 1)

                module.gates_input.weight.copy_(conv_w(p["gates_input_kernel"]))
                module.gates_input.bias.copy_(_t(p["gates_bias"]))
                module.attention_input.weight.copy_(conv_w(p["attention_input_kernel"]))
                module.attention_input.bias.copy_(_t(p["attention_bias"]))
                hidden = np.concatenate(
                    [
                        np.asarray(p["attention_hidden_kernel"]),
                        np.asarray(p["gates_hidden_kernel"]),
                    ],
                    axis=-1,
                )
                module.hidden.weight.copy_(conv_w(hidden))
                module.attention_score.weight.copy_(conv_w(p["attention_score_kernel"]))
                done.add(name)
            for pname, param in module.named_parameters(recurse=False):
                if pname == "gamma":
                    param.copy_(_t(at(params, path)["gamma"]))


# ------------------------------------------------------------------ check


def main(argv=None) -> None:
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import jax
    from vs_pytorch import MODELS, build_pair  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    for key in args.models:
        pair = build_pair(key, args.batch, "float32")
        jax_logits = np.asarray(pair.jax_eval_logits())
        with torch.inference_mode():
            out = pair.torch_model.eval()(*pair.torch_inputs)
        out = out[0] if isinstance(out, tuple) else out
        err = float(np.max(np.abs(out.numpy() - jax_logits)))
        scale = float(np.max(np.abs(jax_logits)))
        ok = abs(pair.torch_params - pair.jax_params) <= 0.02 * pair.jax_params
        print(
            f"{key:22s} params jax {pair.jax_params:>10,d} torch {pair.torch_params:>10,d}"
            f" ({'ok' if ok else 'MISMATCH'}); eval logits max |diff| {err:.2e}"
            f" (max |logit| {scale:.2e})",
            flush=True,
        )
        assert ok, key
        del pair
        jax.clear_caches()


if __name__ == "__main__":
    main()
