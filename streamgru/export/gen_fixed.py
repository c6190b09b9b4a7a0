"""The int16 / int8 C build: float in and out, integers inside (the scheme of :mod:`.quantize`).

The conditioning runs in double exactly as in the float build; its output is rounded to the
int16 input format, and from there on everything is integer: weights int8/int16 in flash,
int32 (int8) or int64 (int16) accumulators, per-row requantisation to Q12 by multiply and
shift, table tanh / sigmoid, an int16 Q15 hidden state. :mod:`.fixed_reference` computes the
same numbers in numpy.
"""

from __future__ import annotations

from . import cwriter as cw
from .quantize import ACT_FRAC, PRE_FRAC, SIGMOID_SHIFT, TANH_SHIFT, QAffine, QuantModel
from .spec import ExportSpec

_WTYPE = {"int16": ("int16_t", "int64_t"), "int8": ("int8_t", "int32_t")}


def _ints(values) -> list[str]:
    return [str(int(v)) for v in values]


def _affine_arrays(p: str, name: str, a: QAffine, wtype: str) -> str:
    return "\n".join(
        [
            cw.c_array(wtype, f"{p}_{name}_w", _ints(a.w.ravel()), 16),
            cw.c_array("int32_t", f"{p}_{name}_m", _ints(a.m), 12),
            cw.c_array("uint8_t", f"{p}_{name}_sh", _ints(a.sh), 16),
            cw.c_array("int32_t", f"{p}_{name}_b", _ints(a.b), 8),
        ]
    )


def _arrays(spec: ExportSpec, qm: QuantModel) -> str:
    p, wtype = spec.prefix, _WTYPE[qm.dtype][0]
    out = [
        cw.c_array("uint16_t", f"{p}_tanh_tab", _ints(qm.tanh_table), 16),
        cw.c_array("uint16_t", f"{p}_sig_tab", _ints(qm.sigmoid_table), 16),
    ]
    for k, (ih, hh) in enumerate(qm.layers):
        out += [_affine_arrays(p, f"l{k}_ih", ih, wtype), _affine_arrays(p, f"l{k}_hh", hh, wtype)]
    for k, dense in enumerate(qm.head):
        out.append(_affine_arrays(p, f"d{k}", dense.affine, wtype))
    return "\n".join(out)


def _helpers(p: str, qm: QuantModel) -> str:
    wtype, acc = _WTYPE[qm.dtype]
    sat16 = ""
    if len(qm.head) > 1:  # only head layers feeding another need it
        sat16 = f"""static int16_t {p}_sat16(int64_t v)
{{
    return v > 32767 ? (int16_t)32767 : (v < -32768 ? (int16_t)-32768 : (int16_t)v);
}}

"""
    tmask, smask = (1 << TANH_SHIFT) - 1, (1 << SIGMOID_SHIFT) - 1
    return f"""static int64_t {p}_rshr(int64_t v, int s)
{{
    return (v + ((int64_t)1 << (s - 1))) >> s; /* arithmetic shift: floor */
}}

static int32_t {p}_sat32(int64_t v)
{{
    return v > 2147483647 ? 2147483647 : (v < -2147483647 ? -2147483647 : (int32_t)v);
}}

{sat16}static int16_t {p}_quant_in(double v)
{{
    double t = v * {float(2**qm.x_frac)!r};
    if (t >= 32767.0) return 32767;
    if (t <= -32768.0) return -32768;
    return (int16_t)(t >= 0.0 ? (int32_t)(t + 0.5) : -(int32_t)(-t + 0.5));
}}

/* Q{PRE_FRAC} int32 -> Q{ACT_FRAC} in [-32767, 32767] */
static int32_t {p}_tanh_q(int32_t pre)
{{
    int32_t a = pre < 0 ? -pre : pre, v;
    if (a >= ({8 << PRE_FRAC})) {{
        v = 32767;
    }} else {{
        int32_t i = a >> {TANH_SHIFT}, f = a & {tmask};
        int32_t t0 = (int32_t){p}_tanh_tab[i], t1 = (int32_t){p}_tanh_tab[i + 1];
        v = t0 + (((t1 - t0) * f + {1 << (TANH_SHIFT - 1)}) >> {TANH_SHIFT});
    }}
    return pre < 0 ? -v : v;
}}

/* Q{PRE_FRAC} int32 -> Q{ACT_FRAC} in [0, 32768] */
static int32_t {p}_sigmoid_q(int32_t pre)
{{
    int32_t a = pre < 0 ? -pre : pre, v;
    if (a >= ({16 << PRE_FRAC})) {{
        v = 32768;
    }} else {{
        int32_t i = a >> {SIGMOID_SHIFT}, f = a & {smask};
        int32_t t0 = (int32_t){p}_sig_tab[i], t1 = (int32_t){p}_sig_tab[i + 1];
        v = t0 + (((t1 - t0) * f + {1 << (SIGMOID_SHIFT - 1)}) >> {SIGMOID_SHIFT});
    }}
    return pre < 0 ? 32768 - v : v;
}}

/* out[r] = sat32(((acc * m + 2^(sh-1)) >> sh) + b), acc = sum w[r][c] * a[c] exactly */
static void {p}_affine(const {wtype} *w, const int32_t *m, const uint8_t *sh, const int32_t *b,
                       const int16_t *a, int rows, int cols, int32_t *out)
{{
    int r, c;
    for (r = 0; r < rows; ++r) {{
        const {wtype} *row = w + r * cols;
        {acc} acc = 0;
        for (c = 0; c < cols; ++c) {{
            acc += ({acc})row[c] * ({acc})a[c];
        }}
        out[r] = {p}_sat32({p}_rshr((int64_t)acc * m[r], sh[r]) + b[r]);
    }}
}}
"""


def _layer(p: str, hidden: int, reset_after: bool, wtype: str) -> str:
    hh_args = f"const {wtype} *wh, const int32_t *mh, const uint8_t *sh, const int32_t *bh"
    if reset_after:
        body = f"""    {p}_affine(wh, mh, sh, bh, h, 3 * H, H, gh);
    for (j = 0; j < H; ++j) {{
        int32_t r = {p}_sigmoid_q({p}_sat32((int64_t)gx[j] + gh[j]));
        int32_t z = {p}_sigmoid_q({p}_sat32((int64_t)gx[H + j] + gh[H + j]));
        int32_t n = {p}_tanh_q({p}_sat32((int64_t)gx[2 * H + j]
                                        + {p}_rshr((int64_t)r * gh[2 * H + j], {ACT_FRAC})));
        h[j] = (int16_t)(n + {p}_rshr((int64_t)z * (h[j] - n), {ACT_FRAC}));
    }}"""
    else:
        body = f"""    int16_t rh[H];
    {p}_affine(wh, mh, sh, bh, h, 2 * H, H, gh);
    for (j = 0; j < H; ++j) {{
        int32_t r = {p}_sigmoid_q({p}_sat32((int64_t)gx[j] + gh[j]));
        rh[j] = (int16_t){p}_rshr((int64_t)r * h[j], {ACT_FRAC});
    }}
    {p}_affine(wh + 2 * H * H, mh + 2 * H, sh + 2 * H, bh + 2 * H, rh, H, H, gh + 2 * H);
    for (j = 0; j < H; ++j) {{
        int32_t z = {p}_sigmoid_q({p}_sat32((int64_t)gx[H + j] + gh[H + j]));
        int32_t n = {p}_tanh_q({p}_sat32((int64_t)gx[2 * H + j] + gh[2 * H + j]));
        h[j] = (int16_t)(n + {p}_rshr((int64_t)z * (h[j] - n), {ACT_FRAC}));
    }}"""
    return f"""static void {p}_layer_hh({hh_args}, const int32_t *gx, int16_t *h)
{{
    enum {{ H = {hidden} }};
    int32_t gh[3 * H];
    int j;
{body}
}}
"""


def _to_input(p: str, activation: str, next_frac: int) -> str:
    if activation in ("sigmoid", "tanh"):
        return f"{p}_sat16(v[j])"
    shift = PRE_FRAC - next_frac
    if shift > 0:
        return f"{p}_sat16({p}_rshr(v[j], {shift}))"
    return f"{p}_sat16((int64_t)v[j] * {1 << -shift})"


def _step(spec: ExportSpec, qm: QuantModel) -> str:
    m, p = spec.model, spec.prefix
    width = max([m.hidden_size] + [d.out_features for d in m.head])
    lines = [
        f"void {p}_step({p}_state *s, const float *x, float *y)",
        "{",
        f"    double xv[{m.input_size}];",
        f"    int16_t xq[{m.input_size}], a[{width}];",
        f"    int32_t g[{3 * m.hidden_size}], v[{width}];",
        "    int j;",
    ]
    if spec.conditioning.active:
        lines.append(f"    {p}_condition(s, x, xv);")
    else:
        lines += [
            f"    for (j = 0; j < {m.input_size}; ++j) xv[j] = (double)x[j];",
            "    s->started = 1u;",
        ]
    lines.append(f"    for (j = 0; j < {m.input_size}; ++j) xq[j] = {p}_quant_in(xv[j]);")
    for k in range(m.num_layers):
        src, n_in = ("xq", m.input_size) if k == 0 else (f"s->h[{k - 1}]", m.hidden_size)
        ih, hh = f"{p}_l{k}_ih", f"{p}_l{k}_hh"
        lines += [
            f"    {p}_affine({ih}_w, {ih}_m, {ih}_sh, {ih}_b, {src}, {3 * m.hidden_size}, {n_in}, g);",
            f"    {p}_layer_hh({hh}_w, {hh}_m, {hh}_sh, {hh}_b, g, s->h[{k}]);",
        ]
    src, width_in = f"s->h[{m.num_layers - 1}]", m.hidden_size
    for k, dense in enumerate(qm.head):
        n_out, d = dense.affine.w.shape[0], f"{p}_d{k}"
        lines.append(f"    {p}_affine({d}_w, {d}_m, {d}_sh, {d}_b, {src}, {n_out}, {width_in}, v);")
        if dense.activation == "relu":
            lines.append(f"    for (j = 0; j < {n_out}; ++j) v[j] = v[j] < 0 ? 0 : v[j];")
        elif dense.activation in ("sigmoid", "tanh"):
            fn = f"{p}_sigmoid_q" if dense.activation == "sigmoid" else f"{p}_tanh_q"
            lines.append(f"    for (j = 0; j < {n_out}; ++j) v[j] = {fn}(v[j]);")
        if k + 1 < len(qm.head):
            conv = _to_input(p, dense.activation, dense.next_frac)
            lines.append(f"    for (j = 0; j < {n_out}; ++j) a[j] = {conv};")
            src, width_in = "a", n_out
    if qm.head:
        frac = ACT_FRAC if qm.head[-1].activation in ("sigmoid", "tanh") else PRE_FRAC
        lines.append(
            f"    for (j = 0; j < {m.output_size}; ++j) y[j] = (float)v[j] / {cw.c_float(2.0**frac)};"
        )
        if len(qm.head) == 1:
            lines.append("    (void)a;")
    else:
        lines += [
            f"    for (j = 0; j < {m.output_size}; ++j) y[j] = (float)s->h[{m.num_layers - 1}][j] / 32768.0f;",
            "    (void)a;",
            "    (void)v;",
        ]
    lines += ["}", ""]
    return "\n".join(lines)


def generate_fixed(spec: ExportSpec, qm: QuantModel) -> tuple[str, str]:
    """The int16 / int8 build of ``spec`` with the quantised model ``qm``: (header, source)."""
    m, p = spec.model, spec.prefix
    acc = _WTYPE[qm.dtype][1]
    notes = (
        f" * Fixed point ({qm.dtype} weights, per-row scales, {acc} accumulators, Q15 hidden\n"
        f" * state, Q12 pre-activations, table tanh/sigmoid; input Q{qm.x_frac}): float in and\n"
        " * out, integers inside. Needs arithmetic >> on negative integers (gcc, clang, armcc).\n"
        " * No <math.h>. The numbers equal streamgru.export.fixed_reference.run_fixed exactly\n"
        " * when the double conditioning is not contracted into FMAs (-ffp-contract=off; the\n"
        " * default of gcc -std=c99, and moot on an M4F, whose doubles are software).\n"
    )
    head = cw.header(spec, qm.dtype, notes, "int16_t", "")
    parts = [
        f"/* {p}.c - generated by `streamgru export c` ({qm.dtype}). Do not edit. */",
        f'#include "{p}.h"',
        "",
        "#include <string.h>",
        "",
    ]
    if spec.conditioning.active:
        parts += [cw.conditioning_arrays(spec), cw.conditioning_function(spec)]
    parts += [
        _arrays(spec, qm),
        _helpers(p, qm),
        _layer(p, m.hidden_size, m.reset_after, _WTYPE[qm.dtype][0]),
        _step(spec, qm),
        cw.lifecycle_functions(spec, qm.dtype),
    ]
    return head, "\n".join(parts)
