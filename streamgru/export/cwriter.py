"""C text shared by the float and fixed-point generators: literals, the header, the conditioning,
init / reset / snapshot / restore.

Every generated name starts with the prefix ``P``: ``P_state``, ``P_init``, ``P_step``, ...
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .spec import ExportSpec

#: Snapshot magic, the first four bytes of every ``P_snapshot`` buffer.
SNAPSHOT_MAGIC = b"SGC1"


def c_double(value: float) -> str:
    """A C double literal that reads back as exactly ``value`` (17 significant digits)."""
    text = repr(float(value))
    if "e" not in text and "." not in text and "inf" not in text and "nan" not in text:
        text += ".0"
    return text


def c_float(value: float) -> str:
    """A C float literal that reads back as exactly ``np.float32(value)`` (9 significant digits)."""
    text = f"{float(np.float32(value)):.9g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text + "f"


def c_array(ctype: str, name: str, values: Iterable[str], per_line: int = 8) -> str:
    """``static const ctype name[n] = {...};`` from already formatted literals."""
    items = list(values)
    lines = []
    for i in range(0, len(items), per_line):
        lines.append("    " + ", ".join(items[i : i + per_line]) + ",")
    body = "\n".join(lines)
    return f"static const {ctype} {name}[{len(items)}] = {{\n{body}\n}};\n"


def model_tag(spec: ExportSpec, dtype: str) -> int:
    """32-bit tag written into snapshots: the model checksum and the build dtype."""
    digest = bytes.fromhex(spec.model.checksum())
    tag = int.from_bytes(digest[:4], "little")
    return tag ^ {"float32": 0, "int16": 0x16, "int8": 0x08}[dtype]


def conditioning_arrays(spec: ExportSpec) -> str:
    """The filter sections, steady-state unit state, mean and 1/std as double arrays."""
    cond, p = spec.conditioning, spec.prefix
    out = []
    if cond.n_sections:
        out.append(c_array("double", f"{p}_sos", (c_double(v) for v in cond.sos.ravel()), 6))
        out.append(
            c_array("double", f"{p}_zi_unit", (c_double(v) for v in cond.zi_unit.ravel()), 2)
        )
    out.append(c_array("double", f"{p}_mean", (c_double(v) for v in cond.mean)))
    out.append(c_array("double", f"{p}_inv_std", (c_double(v) for v in cond.inv_std)))
    return "\n".join(out)


def conditioning_function(spec: ExportSpec) -> str:
    """``static void P_condition(P_state *s, const float *x, double *v)``: filter + normalise.

    The stepper's arithmetic: the biquads in double (scipy's direct form II transposed), the
    output rounded to float, then ``((double)f - mean) * inv_std`` in double.
    """
    p, ns = spec.prefix, spec.conditioning.n_sections
    lines = [
        f"static void {p}_condition({p}_state *s, const float *x, double *v)",
        "{",
        "    int c;",
    ]
    if ns:
        lines += ["    int k;"]
    lines += [f"    for (c = 0; c < {p}_INPUT_SIZE; ++c) {{", "        double u = (double)x[c];"]
    if ns:
        lines += [
            "        if (!s->started) {",
            f"            for (k = 0; k < {ns}; ++k) {{",
            f"                s->zi[k][0][c] = {p}_zi_unit[2 * k] * u;",
            f"                s->zi[k][1][c] = {p}_zi_unit[2 * k + 1] * u;",
            "            }",
            "        }",
            f"        for (k = 0; k < {ns}; ++k) {{",
            f"            const double *q = &{p}_sos[6 * k];",
            "            double y = q[0] * u + s->zi[k][0][c];",
            "            s->zi[k][0][c] = q[1] * u - q[4] * y + s->zi[k][1][c];",
            "            s->zi[k][1][c] = q[2] * u - q[5] * y;",
            "            u = y;",
            "        }",
            "        u = (double)(float)u; /* the stepper hands float32 to the normalisation */",
        ]
    lines += [
        f"        v[c] = (u - {p}_mean[c]) * {p}_inv_std[c];",
        "    }",
        "    s->started = 1u;",
        "}",
        "",
    ]
    return "\n".join(lines)


def state_struct(spec: ExportSpec, hidden_ctype: str) -> str:
    """The ``P_state`` typedef for the header."""
    m, p, ns = spec.model, spec.prefix, spec.conditioning.n_sections
    lines = ["typedef struct {"]
    if ns:
        lines.append(
            f"    double zi[{ns}][2][{m.input_size}]; /* biquad state, scipy's zi layout */"
        )
    lines += [
        f"    {hidden_ctype} h[{m.num_layers}][{m.hidden_size}]; /* hidden state per layer */",
        "    uint32_t started;  /* 0 until the first sample has set the filter state */",
        f"}} {p}_state;",
    ]
    return "\n".join(lines)


def lifecycle_functions(spec: ExportSpec, dtype: str) -> str:
    """``P_init``, ``P_reset``, ``P_snapshot`` and ``P_restore``."""
    p = spec.prefix
    tag = model_tag(spec, dtype)
    magic = int.from_bytes(SNAPSHOT_MAGIC, "little")
    return f"""void {p}_init({p}_state *s)
{{
    memset(s, 0, sizeof *s);
}}

void {p}_reset({p}_state *s)
{{
    memset(s, 0, sizeof *s);
}}

static void {p}_put_u32(uint8_t *b, uint32_t v)
{{
    b[0] = (uint8_t)(v & 0xFFu);
    b[1] = (uint8_t)((v >> 8) & 0xFFu);
    b[2] = (uint8_t)((v >> 16) & 0xFFu);
    b[3] = (uint8_t)((v >> 24) & 0xFFu);
}}

static uint32_t {p}_get_u32(const uint8_t *b)
{{
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}}

void {p}_snapshot(const {p}_state *s, uint8_t *buf)
{{
    {p}_put_u32(buf, {magic}u);
    {p}_put_u32(buf + 4, {tag}u);
    memcpy(buf + 8, s, sizeof *s);
}}

int {p}_restore({p}_state *s, const uint8_t *buf)
{{
    {p}_state tmp;
    if ({p}_get_u32(buf) != {magic}u) {{
        return -1;
    }}
    if ({p}_get_u32(buf + 4) != {tag}u) {{
        return -2;
    }}
    memcpy(&tmp, buf + 8, sizeof tmp);
    if (tmp.started > 1u) {{
        return -3;
    }}
    *s = tmp;
    return 0;
}}
"""


def header(spec: ExportSpec, dtype: str, api_notes: str, hidden_ctype: str, extra: str) -> str:
    """The complete ``P.h``: the API documented at the top, sizes, the state struct."""
    m, p = spec.model, spec.prefix
    guard = f"{p.upper()}_H"
    acts = ", ".join(d.activation for d in m.head) or "none (output = top hidden state)"
    cond = spec.conditioning
    cond_text = (
        f"{cond.n_sections} biquad section(s), steady-state start on the first sample"
        if cond.n_sections
        else "no filter"
    )
    return f"""/*
 * {p}.h - a streamgru GRU model exported to C99 ({dtype} build), generated by
 * `streamgru export c`. Do not edit: export again instead.
 *
 * Model: input_size {m.input_size}, hidden_size {m.hidden_size}, num_layers {m.num_layers},
 * reset {"after (PyTorch)" if m.reset_after else "before (ONNX lbr=0, Keras reset_after=False)"},
 * head activations: {acts}; output_size {m.output_size}.
 * Conditioning in front of the GRU, as streamgru.Stepper runs it: {cond_text}; then
 * (x - input_mean) / input_std per channel (in double precision).
 *
 * API (no malloc, no globals written, no recursion; the state is yours):
 *   {p}_state s;                 caller-owned state, {p}_STATE_SIZE bytes as a snapshot
 *   {p}_init(&s);                once, before the first step
 *   {p}_step(&s, x, y);          x: {p}_INPUT_SIZE floats (one sample, raw units),
 *                                 y: {p}_OUTPUT_SIZE floats written (the model's output)
 *   {p}_reset(&s);               forget the stream (the next sample restarts the filter)
 *   uint8_t buf[{p}_STATE_SIZE];
 *   {p}_snapshot(&s, buf);       copy the state out (magic, model tag, state bytes)
 *   {p}_restore(&s, buf);        0 on success; -1 bad magic, -2 another model or build,
 *                                 -3 corrupt state; s is unchanged unless 0
{api_notes}
 * A snapshot holds the raw struct: restore it on the same build and architecture only.
 * Thread safety: one state per stream, used from one context at a time.
 */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define {p}_INPUT_SIZE {m.input_size}
#define {p}_HIDDEN_SIZE {m.hidden_size}
#define {p}_NUM_LAYERS {m.num_layers}
#define {p}_OUTPUT_SIZE {m.output_size}

{state_struct(spec, hidden_ctype)}

/** Bytes of a snapshot: an 8-byte header then the state struct. */
#define {p}_STATE_SIZE (8u + sizeof({p}_state))

void {p}_init({p}_state *s);
void {p}_reset({p}_state *s);
void {p}_step({p}_state *s, const float *x, float *y);
void {p}_snapshot(const {p}_state *s, uint8_t *buf);
int {p}_restore({p}_state *s, const uint8_t *buf);
{extra}
#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
"""
