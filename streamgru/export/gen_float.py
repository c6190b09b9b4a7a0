"""The float32 C build: the weights as ``static const float`` arrays, the GRU and head in float.

The arithmetic follows :class:`streamgru.Stepper` with ``dtype="float32"``: conditioning in
double, the GRU and head in float, ``sigmoid(x) = 0.5 + 0.5 * tanh(x / 2)``. With libm, tanh is
``tanhf``; with ``no_libm=True`` it is the rational approximation the float32 stepper itself
uses (Eigen's, clamped to +-7.9053; max error against the exact tanh 3.3e-7, bound 4e-7, tested),
and the build needs no ``<math.h>``. Softmax needs ``expf`` and so libm.
"""

from __future__ import annotations

from ..errors import UnsupportedModelError
from . import cwriter as cw
from .spec import ExportSpec

# Eigen's float tanh: numerator odd powers 1..13, denominator even powers 0..6.
_TANH_P = (
    4.89352455891786e-03,
    6.37261928875436e-04,
    1.48572235717979e-05,
    5.12229709037114e-08,
    -8.60467152213735e-11,
    2.00018790482477e-13,
    -2.76076847742355e-16,
)
_TANH_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)

#: Max |tanh_approx(x) - tanh(x)| over all float32 x, measured by the tests (bound stated).
NO_LIBM_TANH_MAX_ERROR = 4e-7


def _activations(p: str, no_libm: bool) -> str:
    if not no_libm:
        tanh_body = "    return tanhf(x);"
    else:
        pn = [cw.c_float(v) for v in _TANH_P]
        qn = [cw.c_float(v) for v in _TANH_Q]
        tanh_body = f"""    float xc = x < -7.90531110763549805f ? -7.90531110763549805f : x;
    float x2, num, den;
    xc = xc > 7.90531110763549805f ? 7.90531110763549805f : xc;
    if (x < 0.0004f && x > -0.0004f) {{
        return x;
    }}
    x2 = xc * xc;
    num = x2 * {pn[6]} + {pn[5]};
    num = x2 * num + {pn[4]};
    num = x2 * num + {pn[3]};
    num = x2 * num + {pn[2]};
    num = x2 * num + {pn[1]};
    num = x2 * num + {pn[0]};
    num = xc * num;
    den = x2 * {qn[3]} + {qn[2]};
    den = x2 * den + {qn[1]};
    den = x2 * den + {qn[0]};
    return num / den;"""
    return f"""float {p}_tanhf(float x)
{{
{tanh_body}
}}

float {p}_sigmoidf(float x)
{{
    return 0.5f + 0.5f * {p}_tanhf(0.5f * x);
}}
"""


def _weights(spec: ExportSpec) -> str:
    p, out = spec.prefix, []
    for k, layer in enumerate(spec.model.layers):
        for name, arr in (
            ("wih", layer.weight_ih),
            ("whh", layer.weight_hh),
            ("bih", layer.bias_ih),
            ("bhh", layer.bias_hh),
        ):
            out.append(
                cw.c_array("float", f"{p}_l{k}_{name}", (cw.c_float(v) for v in arr.ravel()))
            )
    for k, dense in enumerate(spec.model.head):
        out.append(
            cw.c_array("float", f"{p}_d{k}_w", (cw.c_float(v) for v in dense.weight.ravel()))
        )
        out.append(cw.c_array("float", f"{p}_d{k}_b", (cw.c_float(v) for v in dense.bias.ravel())))
    return "\n".join(out)


def _kernels(p: str, hidden: int, reset_after: bool) -> str:
    """``P_affine`` (out = b + W x, row-major W) and ``P_layer`` (one GRU layer, in place)."""
    common = f"""static void {p}_affine(const float *w, const float *b, const float *x, int rows, int cols,
                        float *out)
{{
    int r, c;
    for (r = 0; r < rows; ++r) {{
        const float *row = w + r * cols;
        float acc = 0.0f;
        for (c = 0; c < cols; ++c) {{
            acc += row[c] * x[c];
        }}
        out[r] = acc + b[r];
    }}
}}

static void {p}_layer(const float *wih, const float *whh, const float *bih, const float *bhh,
                       const float *x, int n_in, float *h)
{{
    enum {{ H = {hidden} }};
    float gx[3 * H], gh[3 * H];
    int j;
    {p}_affine(wih, bih, x, 3 * H, n_in, gx);
"""
    if reset_after:
        body = f"""    {p}_affine(whh, bhh, h, 3 * H, H, gh);
    for (j = 0; j < H; ++j) {{
        float r = {p}_sigmoidf(gx[j] + gh[j]);
        float z = {p}_sigmoidf(gx[H + j] + gh[H + j]);
        float n = {p}_tanhf(gx[2 * H + j] + r * gh[2 * H + j]);
        h[j] = n + z * (h[j] - n);
    }}
}}
"""
    else:
        body = f"""    float rh[H];
    {p}_affine(whh, bhh, h, 2 * H, H, gh);
    for (j = 0; j < H; ++j) {{
        rh[j] = {p}_sigmoidf(gx[j] + gh[j]) * h[j];
    }}
    {p}_affine(whh + 2 * H * H, bhh + 2 * H, rh, H, H, gh + 2 * H);
    for (j = 0; j < H; ++j) {{
        float z = {p}_sigmoidf(gx[H + j] + gh[H + j]);
        float n = {p}_tanhf(gx[2 * H + j] + gh[2 * H + j]);
        h[j] = n + z * (h[j] - n);
    }}
}}
"""
    return common + body


def _activation_code(p: str, act: str, var: str, n: int) -> list[str]:
    if act == "identity":
        return []
    if act == "relu":
        return [f"    for (j = 0; j < {n}; ++j) {var}[j] = {var}[j] < 0.0f ? 0.0f : {var}[j];"]
    if act in ("sigmoid", "tanh"):
        fn = f"{p}_sigmoidf" if act == "sigmoid" else f"{p}_tanhf"
        return [f"    for (j = 0; j < {n}; ++j) {var}[j] = {fn}({var}[j]);"]
    return [
        "    {",
        f"        float m = {var}[0], sum = 0.0f;",
        f"        for (j = 1; j < {n}; ++j) m = {var}[j] > m ? {var}[j] : m;",
        f"        for (j = 0; j < {n}; ++j) {{ {var}[j] = expf({var}[j] - m); sum += {var}[j]; }}",
        f"        for (j = 0; j < {n}; ++j) {var}[j] = {var}[j] / sum;",
        "    }",
    ]


def _step(spec: ExportSpec) -> str:
    m, p = spec.model, spec.prefix
    width = max([m.hidden_size] + [d.out_features for d in m.head])
    lines = [f"void {p}_step({p}_state *s, const float *x, float *y)", "{"]
    lines += [f"    float xin[{m.input_size}];", "    int j;"]
    if m.head:
        lines.append(
            f"    float a[{width}];" if len(m.head) == 1 else f"    float a[{width}], b[{width}];"
        )
    if spec.conditioning.active:
        lines += [
            f"    double v[{m.input_size}];",
            f"    {p}_condition(s, x, v);",
            f"    for (j = 0; j < {m.input_size}; ++j) xin[j] = (float)v[j];",
        ]
    else:
        lines += [
            f"    for (j = 0; j < {m.input_size}; ++j) xin[j] = x[j];",
            "    s->started = 1u;",
        ]
    for k in range(m.num_layers):
        src, n_in = ("xin", m.input_size) if k == 0 else (f"s->h[{k - 1}]", m.hidden_size)
        lines.append(
            f"    {p}_layer({p}_l{k}_wih, {p}_l{k}_whh, {p}_l{k}_bih, {p}_l{k}_bhh, {src}, "
            f"{n_in}, s->h[{k}]);"
        )
    src, width_in = f"s->h[{m.num_layers - 1}]", m.hidden_size
    for k, dense in enumerate(m.head):
        dst = "a" if k % 2 == 0 else "b"
        lines.append(
            f"    {p}_affine({p}_d{k}_w, {p}_d{k}_b, {src}, {dense.out_features}, {width_in}, {dst});"
        )
        lines += _activation_code(p, dense.activation, dst, dense.out_features)
        src, width_in = dst, dense.out_features
    lines += [f"    for (j = 0; j < {m.output_size}; ++j) y[j] = {src}[j];", "}", ""]
    return "\n".join(lines)


def generate_float(spec: ExportSpec, no_libm: bool = False) -> tuple[str, str]:
    """The float32 build of ``spec``: returns (header text, source text).

    Raises
    ------
    UnsupportedModelError
        ``no_libm`` with a softmax head (softmax needs ``expf``).
    """
    m, p = spec.model, spec.prefix
    if no_libm and any(d.activation == "softmax" for d in m.head):
        raise UnsupportedModelError(
            "a softmax head needs expf from libm; export without --no-libm, or use another head"
        )
    notes = (
        " * tanh/sigmoid: a rational approximation (no libm; |error| < 4e-7).\n"
        if no_libm
        else " * tanh/sigmoid: tanhf from <math.h> (link with -lm).\n"
    )
    extra = f"float {p}_tanhf(float x);\nfloat {p}_sigmoidf(float x);\n"
    head = cw.header(spec, "float32", notes, "float", extra)
    parts = [
        f"/* {p}.c - generated by `streamgru export c` (float32). Do not edit. */",
        f'#include "{p}.h"',
        "",
        "#include <string.h>",
    ]
    if not no_libm:
        parts.append("#include <math.h>")
    parts.append("")
    if spec.conditioning.active:
        parts += [cw.conditioning_arrays(spec), cw.conditioning_function(spec)]
    parts += [
        _weights(spec),
        _activations(p, no_libm),
        _kernels(p, m.hidden_size, m.reset_after),
        _step(spec),
        cw.lifecycle_functions(spec, "float32"),
    ]
    return head, "\n".join(parts)
