"""Train the pretrained ECG beat detector ``weights/ecg_beats.safetensors`` (model card: README.md).

Task: one score per sample (sigmoid) that is high from 20 to 60 ms after each R peak of one ECG
lead at 360 Hz, behind the ``ecg-monitor`` filter chain (mains 60 Hz) and a fixed
normalisation; :class:`streamgru.signal.beats.BeatDetector` turns it into beats.

Run from the repository root (needs torch==2.13.0 CPU, neurokit2, wfdb, scipy; about 20 minutes
on one thread)::

    python weights/train_ecg_beats.py

Data: MIT-BIH record 100 lead MLII (training part below), a pool of neurokit2 ECGSYN records and
a pool of the own synthesiser's records (``ecg_synth``; PVCs, paced, BBB, AF-like, 40-180 bpm,
250/360/500/1000 Hz resampled to 360 Hz), with artefacts (``ecg_noise``) added before the
filter. Split (sample indices of record 100, 650,000 samples at 360 Hz):

* training: samples [0, 518400): the first 24 minutes;
* unused gap: [518400, 542000) (65.6 s), so that no training window touches the held-out part;
* held out: samples [542000, 650000): the last 300 s, only used for the final report; lead V5
  is never used; the synthetic held-out records (``make_heldout_ecg.py``) use other seeds than
  the pools (``ecg_dataset``).

Everything is seeded (numpy ``default_rng``, ``torch.manual_seed(seed)``), torch runs
deterministic algorithms on one thread (``--threads``), and the header is written with sorted
keys, so the same command on the same torch version writes the same bytes.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import scipy.signal

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "streamgru" / "data" / "weights"
for _p in (REPO, REPO / "weights"):  # streamgru from a checkout; the sibling data modules
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import ecg_dataset  # noqa: E402
import ecg_noise  # noqa: E402

FS = 360.0
N_SAMPLES = 650_000
TRAIN = (0, 518_400)  # first 24 min
HELD_OUT = (542_000, 650_000)  # last 5 min
WARMUP = 360  # 1 s: no loss, no evaluation (filter and GRU settle after a cold start)
TAIL = 72  # 0.2 s at the end of an evaluated segment: a beat there may not be decided yet
BEAT_SYMBOLS = frozenset("NLRAaJSVFejE/fQ")
TARGET_MS = (20, 60)  # the score should be high from R + 20 ms to R + 60 ms (inclusive)
TOLERANCE_S = 0.150
REFRACTORY_S = 0.25
MAINS = 60  # record 100 was recorded in the US
SOURCE_P = (0.3, 0.15, 0.55)  # record 100, ECGSYN pool, own-synthesiser pool


# ---------------------------------------------------------------------------- data
def record_path() -> Path:
    """The packaged copy of MIT-BIH record 100 (``streamgru/data/mitdb/100``, no suffix)."""
    root = importlib.resources.files("streamgru").joinpath("data", "mitdb")
    return Path(str(root)) / "100"


def load_record() -> tuple[np.ndarray, np.ndarray]:
    """Lead MLII in mV (float64, (650000,)) and the annotated beat sample indices (int64)."""
    import wfdb

    path = str(record_path())
    rec = wfdb.rdrecord(path, channels=[0], physical=True)
    assert rec.fs == FS and rec.sig_name == ["MLII"] and rec.units == ["mV"], rec.__dict__
    x = np.ascontiguousarray(rec.p_signal[:, 0], dtype=np.float64)
    ann = wfdb.rdann(path, "atr")
    beats = np.array(
        [s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS], dtype=np.int64
    )
    return x, beats


# -------------------------------------------------------------------------- filter
def make_chain(n_channels: int = 1):
    """A fresh ``ecg-monitor`` chain (mains 60 Hz) at 360 Hz: the daemon's chain, steady start.

    Its output equals ``sosfilt(sos, X, axis=0, zi=sosfilt_zi(sos)[:, :, None] * X[0])``.
    """
    from streamgru.signal.chain import FilterChain

    return FilterChain.preset("ecg-monitor", fs=FS, mains=MAINS, n_channels=n_channels)


def filter_columns(X: np.ndarray) -> np.ndarray:
    """Filter each column of ``X`` (T, C) from its own start, as a daemon does at connection."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    return np.asarray(make_chain(X.shape[1]).process(X), dtype=np.float64)


# -------------------------------------------------------------------- augmentation
def baseline_wander(n: int, rng: np.random.Generator, amp_max: float = 0.8) -> np.ndarray:
    return ecg_noise.baseline_wander(n, FS, rng, amp_max)


def emg_noise(n: int, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return ecg_noise.emg_noise(n, FS, rng, sigma)


def mains_hum(n: int, rng: np.random.Generator, freq: float, amp: float) -> np.ndarray:
    return ecg_noise.mains_hum(n, FS, rng, freq, amp)


def random_gain(rng: np.random.Generator) -> float:
    """Amplitude x0.3-3 (log-uniform), polarity inverted with p = 0.2."""
    g = math.exp(rng.uniform(math.log(0.3), math.log(3.0)))
    return -g if rng.random() < 0.2 else g


def targets(n: int, beats: np.ndarray) -> np.ndarray:
    """1 from R + TARGET_MS[0] to R + TARGET_MS[1] (inclusive) after each beat, else 0."""
    y = np.zeros(n, dtype=np.float32)
    lo = round(TARGET_MS[0] * FS / 1000)
    hi = round(TARGET_MS[1] * FS / 1000)
    for r in np.round(beats).astype(np.int64):
        a, b = max(r + lo, 0), min(r + hi + 1, n)
        if a < b:
            y[a:b] = 1.0
    return y


def record_window(x, beats, rng, win, margin):
    """A raw window of record 100's training part (time scale x0.91-1.11 with p = 0.5, gain,
    artefacts) and its beat positions."""
    up, down = 1, 1
    if rng.random() < 0.5:
        up, down = 50, int(rng.integers(45, 56))  # time scale 0.91 .. 1.11
    n_raw = math.ceil((win + 2 * margin) * down / up) + 2
    st = int(rng.integers(TRAIN[0], TRAIN[1] - n_raw))
    seg = x[st : st + n_raw]
    pos = (beats[(beats >= st - 50) & (beats < st + n_raw + 50)] - st).astype(np.float64)
    if up != down:
        seg = scipy.signal.resample_poly(seg, up, down, padtype="line")
        pos = pos * up / down
    seg = ecg_noise.random_augment(seg[margin : margin + win] * random_gain(rng), FS, rng)
    return seg, pos - margin


def sample_batch(x, beats, pools, rng, batch, win, mean, std):
    """A batch of (batch, win) normalised filtered windows and their targets.

    Sources: record 100's training part (p = SOURCE_P[0]), the ECGSYN pool, the own
    synthesiser's pool; artefacts on the raw signal at its native rate, before the filter.
    """
    margin = 200
    windows = np.empty((win, batch))
    ys = np.empty((batch, win), dtype=np.float32)
    for k in range(batch):
        src = int(rng.choice(3, p=SOURCE_P))
        if src == 0:
            seg, pos = record_window(x, beats, rng, win, margin)
        else:
            pool = pools[src - 1]
            rec = pool[int(rng.integers(len(pool)))]
            gain = random_gain(rng) / 1.2 if src == 1 else 1.0  # ECGSYN's R is about 1.2 mV
            seg, pos = ecg_dataset.pool_window(rec, rng, win, margin, gain)
        windows[:, k] = seg
        ys[k] = targets(win, pos)
    filt = (filter_columns(windows) - mean) / std
    return np.ascontiguousarray(filt.T, dtype=np.float32), ys


# ---------------------------------------------------------------------- evaluation
def torch_scores(net, xn: np.ndarray) -> np.ndarray:
    """Sigmoid scores (float64) of the torch model over one normalised sequence (T,)."""
    import torch

    with torch.no_grad():
        logits = net(torch.from_numpy(np.asarray(xn, dtype=np.float32))[None, :, None])
    return torch.sigmoid(logits)[0].double().numpy()


def evaluate(scores, ref, threshold, first=WARMUP, last=None):
    """Detect beats in ``scores`` and match them against ``ref`` (same indexing).

    Only reference beats and unpaired detections in [first, last) count (default last =
    len - TAIL). Returns the counts and the decision delays of the paired beats.
    """
    from streamgru.signal.beats import BeatDetector, pair_beats

    last = scores.size - TAIL if last is None else last
    det = BeatDetector(FS, threshold=threshold, refractory_s=REFRACTORY_S)
    events = det.update(scores, 0) + det.flush()
    idx = np.array([e.index for e in events], dtype=np.int64)
    emitted = np.array([e.emitted_index for e in events], dtype=np.int64)
    ref = np.asarray(ref)
    pd, pr = pair_beats(idx, ref, FS, TOLERANCE_S)
    in_win = (pr >= first) & (pr < last)
    tp = int(in_win.sum())
    fn = int(((ref >= first) & (ref < last)).sum()) - tp
    unpaired = np.setdiff1d(idx, pd)
    fp = int(((unpaired >= first) & (unpaired < last)).sum())
    sens = tp / (tp + fn) if tp + fn else float("nan")
    ppv = tp / (tp + fp) if tp + fp else float("nan")
    emit_of = dict(zip(idx.tolist(), emitted.tolist()))
    delay = (pd[in_win] - pr[in_win]) * 1000.0 / FS
    emit_delay = (np.array([emit_of[d] for d in pd[in_win]]) - pr[in_win]) * 1000.0 / FS
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "sensitivity": round(sens, 5),
        "ppv": round(ppv, 5),
        "delay_ms": delay,
        "emit_delay_ms": emit_delay,
    }


def heldout_conditions(x: np.ndarray, beats: np.ndarray, seed: int):
    """(name, raw held-out segment, reference beats in its indexing), clean and augmented.

    Every augmentation is fixed by ``seed`` and applied to the raw signal before the filter.
    """
    a, b = HELD_OUT
    raw = x[a:b]
    ref = beats[(beats >= a) & (beats < b)] - a
    n = raw.size
    rng = np.random.default_rng(seed + 1000)
    out = [
        ("clean", raw, ref),
        ("amplitude x0.5", raw * 0.5, ref),
        ("amplitude x2", raw * 2.0, ref),
        ("inverted polarity", -raw, ref),
        (
            "baseline wander 0.5 mV (0.1 + 0.33 Hz)",
            raw + mains_hum(n, rng, 0.1, 0.5) + mains_hum(n, rng, 0.33, 0.5),
            ref,
        ),
        ("gaussian noise 0.05 mV rms", raw + rng.normal(0.0, 0.05, n), ref),
        ("EMG-like noise 0.1 mV (20-150 Hz bursts)", raw + emg_noise(n, rng, 0.1), ref),
        ("mains 50 Hz 0.2 mV", raw + mains_hum(n, rng, 50.0, 0.2), ref),
        ("mains 60 Hz 0.2 mV", raw + mains_hum(n, rng, 60.0, 0.2), ref),
    ]
    for up, down, name in ((10, 11, "time scale x0.91 (faster)"), (11, 10, "time scale x1.1")):
        rs = scipy.signal.resample_poly(raw, up, down, padtype="line")
        out.append((name, rs, np.round(ref * up / down).astype(np.int64)))
    mixed = 0.7 * raw + baseline_wander(n, rng, 0.5) + rng.normal(0.0, 0.03, n)
    mixed = mixed + mains_hum(n, rng, 50.0, 0.1) + emg_noise(n, rng, 0.05)
    out.append(("mixed: x0.7, wander, 0.03 mV noise, EMG 0.05 mV, 50 Hz 0.1 mV", mixed, ref))
    # harder than anything in training, to show where it breaks
    out += [
        ("stress: amplitude x0.25", raw * 0.25, ref),
        ("stress: gaussian noise 0.15 mV rms", raw + rng.normal(0.0, 0.15, n), ref),
        ("stress: EMG-like noise 0.3 mV", raw + emg_noise(n, rng, 0.3), ref),
        ("stress: mains 50 Hz 1 mV", raw + mains_hum(n, rng, 50.0, 1.0), ref),
        (
            "stress: baseline wander 2 mV (0.1 + 0.33 Hz)",
            raw + mains_hum(n, rng, 0.1, 2.0) + mains_hum(n, rng, 0.33, 2.0),
            ref,
        ),
    ]
    return out


def summary(res: dict) -> dict:
    d, e = res["delay_ms"], res["emit_delay_ms"]
    out = {k: res[k] for k in ("tp", "fp", "fn", "sensitivity", "ppv")}
    if d.size:
        out["delay_ms_median"] = round(float(np.median(d)), 1)
        out["delay_ms_p95"] = round(float(np.percentile(d, 95)), 1)
        out["emit_delay_ms_median"] = round(float(np.median(e)), 1)
        out["emit_delay_ms_p95"] = round(float(np.percentile(e, 95)), 1)
    return out


# ---------------------------------------------------------------------------- main
def canonical_safetensors(path: str | Path) -> None:
    """Rewrite a .safetensors header with sorted keys, so that equal content gives equal bytes.

    ``safetensors`` keeps the metadata in a hash map, whose order changes from run to run; the
    tensors' bytes are untouched (their offsets are relative to the end of the header).
    """
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    ordered = {"__metadata__": dict(sorted(meta.items()))} | dict(sorted(header.items()))
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])


def command_line(args: argparse.Namespace) -> str:
    """The training command with every setting spelled out (``--out`` left off)."""
    return (
        f"python weights/train_ecg_beats.py --steps {args.steps} --batch {args.batch} "
        f"--window-s {args.window_s:g} --hidden {args.hidden} --layers {args.layers} "
        f"--lr {args.lr:g} --seed {args.seed} --threads {args.threads} "
        f"--synth-records {args.synth_records} --ecgsyn-records {args.ecgsyn_records} "
        f"--pool-s {args.pool_s:g}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--window-s", type=float, default=4.0)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: at H=32 a second thread gains nothing, and on a busy 2-core "
        "machine 2 threads were measured 2-20x slower)",
    )
    ap.add_argument("--synth-records", type=int, default=240, help="own-synthesiser pool size")
    ap.add_argument("--ecgsyn-records", type=int, default=40, help="ECGSYN pool size")
    ap.add_argument("--pool-s", type=float, default=40.0, help="length of each pool record, s")
    # the real file lives in the package (weights/ecg_beats.safetensors links to it)
    ap.add_argument("--out", default=str(SHIPPED / "ecg_beats.safetensors"))
    args = ap.parse_args(argv)

    import torch
    from torch import nn

    from streamgru.model.core import GRUModel

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(args.seed)

    x, beats = load_record()
    train_ref = beats[(beats >= TRAIN[0]) & (beats < TRAIN[1])] - TRAIN[0]
    train_filt = filter_columns(x[TRAIN[0] : TRAIN[1], None])[:, 0]
    mean, std = float(train_filt.mean()), float(train_filt.std())
    print(f"train {TRAIN}: {train_ref.size} beats; filtered mean {mean:.3g} std {std:.4g}")
    t_pool = time.perf_counter()
    pools = (
        ecg_dataset.ecgsyn_pool(args.ecgsyn_records, args.pool_s),
        ecg_dataset.synth_pool(args.synth_records, args.pool_s),
    )
    n_pool_beats = sum(r.beats.size for p in pools for r in p)
    print(f"pools: {n_pool_beats} beats, {time.perf_counter() - t_pool:.0f} s", flush=True)

    class BeatNet(nn.Module):
        def __init__(self, hidden: int, layers: int) -> None:
            super().__init__()
            self.gru = nn.GRU(1, hidden, layers, batch_first=True)
            self.fc = nn.Linear(hidden, 1)

        def forward(self, xb):
            return self.fc(self.gru(xb)[0])[..., 0]

    net = BeatNet(args.hidden, args.layers)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps, eta_min=args.lr / 30)
    lossf = nn.BCEWithLogitsLoss()
    win = round(args.window_s * FS)
    t_train = time.perf_counter()
    run_loss = 0.0
    for step in range(1, args.steps + 1):
        xb, yb = sample_batch(x, beats, pools, rng, args.batch, win, mean, std)
        logits = net(torch.from_numpy(xb)[..., None])
        loss = lossf(logits[:, WARMUP:], torch.from_numpy(yb)[:, WARMUP:])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        run_loss += loss.item()
        if step % 100 == 0:
            el = time.perf_counter() - t_train
            print(f"step {step:5d}  loss {run_loss / 100:.4f}  {el:6.0f} s", flush=True)
            run_loss = 0.0
    train_s = time.perf_counter() - t_train
    net.eval()

    # Threshold: chosen on training data only (clean record-100 training part and the first
    # pool records, resampled to 360 Hz; the middle of the best plateau).
    tr_scores = torch_scores(net, (train_filt - mean) / std)
    tune = [(tr_scores, train_ref)]
    for rec in pools[0][:8] + pools[1][:40]:
        raw = ecg_dataset.to_model_rate(rec.signal, rec.fs)
        ref = np.round(rec.beats * FS / rec.fs).astype(np.int64)
        xn = (filter_columns(raw[:, None])[:, 0] - mean) / std
        tune.append((torch_scores(net, xn), ref))
    grid = np.round(np.arange(0.10, 0.91, 0.05), 2)
    errs = []
    for thr in grid:
        rs = [evaluate(sc, ref, thr) for sc, ref in tune]
        errs.append(sum(r["fp"] + r["fn"] for r in rs))
    errs = np.array(errs)
    best = grid[errs == errs.min()]
    threshold = float(best[len(best) // 2])
    train_res = evaluate(tr_scores, train_ref, threshold)
    print(f"threshold {threshold} (tuning errors per threshold: {dict(zip(grid.tolist(), errs))})")
    print("train clean:", summary(train_res))

    # Held-out report (never used for a choice above).
    metrics = {"tolerance_s": TOLERANCE_S, "train_clean": summary(train_res), "held_out": {}}
    ho_clean_xn = None
    for name, raw, ref in heldout_conditions(x, beats, args.seed):
        xn = (filter_columns(raw[:, None])[:, 0] - mean) / std
        if name == "clean":
            ho_clean_xn = xn
        res = summary(evaluate(torch_scores(net, xn), ref, threshold))
        metrics["held_out"][name] = res
        print(f"held out, {name}: {res}")

    # Export and check the streamgru float64 oracle against torch on 30 s of held-out signal.
    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    chain_dict = make_chain(1).to_dict()
    clean = metrics["held_out"]["clean"]
    metadata = {
        "fs": f"{FS:g}",
        "channels": json.dumps(["MLII"]),
        "units": "mV",
        "filter": json.dumps(chain_dict),
        "input_mean": json.dumps([mean]),
        "input_std": json.dumps([std]),
        "outputs": json.dumps(["beat"]),
        "head_activation": "sigmoid",
        "threshold": repr(threshold),
        "refractory_s": repr(REFRACTORY_S),
        # beat index minus annotated R peak, median on the clean held-out part (p95 in metrics)
        "decision_delay_ms": f"{clean['delay_ms_median']:g}",
        # when the event leaves the BeatDetector (end of the run above threshold), same stats
        "emit_delay_ms": f"{clean['emit_delay_ms_median']:g}",
        "target_window_ms": json.dumps(list(TARGET_MS)),
        "postprocessing": json.dumps(
            {
                "class": "streamgru.signal.beats.BeatDetector",
                "threshold": threshold,
                "refractory_s": REFRACTORY_S,
                "index_mode": "peak",
                "max_wait_s": 0.2,
            }
        ),
        "trained_on": json.dumps(
            {
                "dataset": "MIT-BIH Arrhythmia Database (PhysioNet mitdb)",
                "record": "100",
                "channel": "MLII (signal 0); V5 (signal 1) never used in training",
                "train_samples": list(TRAIN),
                "held_out_samples": list(HELD_OUT),
                "licence": "ODC-By 1.0",
                "synthetic": {
                    "own_synthesiser": "weights/ecg_synth.py, numpy default_rng([1, i]), "
                    f"i < {args.synth_records}, {args.pool_s:g} s each",
                    "ecgsyn": "neurokit2 ecg_simulate (ECGSYN, MIT licence), random_state "
                    f"{ecg_dataset.ECGSYN_SEED0} + i, i < {args.ecgsyn_records}",
                    "held_out": "weights/make_heldout_ecg.py: default_rng([2, i]), ECGSYN "
                    f"seeds from {ecg_dataset.HELDOUT_ECGSYN_SEED0}; never trained on",
                },
                "attribution": "Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia "
                "Database. IEEE Eng in Med and Biol 20(3):45-50 (2001); Goldberger A, et al. "
                "PhysioBank, PhysioToolkit, and PhysioNet. Circulation 101(23):e215-e220 (2000).",
            }
        ),
        "seed": str(args.seed),
        "metrics": json.dumps(metrics),
        "training_command": command_line(args),
        "torch_version": torch.__version__,
        "description": "R-peak (beat) detector for one ECG lead at 360 Hz; score is high "
        f"{TARGET_MS[0]}-{TARGET_MS[1]} ms after each R peak. See weights/README.md.",
    }
    model = GRUModel.from_state_dict(state, metadata=metadata)
    excerpt = ho_clean_xn[: round(30 * FS)]
    ours = model.forward(excerpt[:, None])[:, 0]
    theirs = torch_scores(net, excerpt)
    diff = float(np.max(np.abs(ours - theirs)))
    print(f"streamgru forward() vs torch on 30 s held-out: max |diff| = {diff:.2e}")
    if not diff <= 1e-5:
        print("ERROR: the exported model does not reproduce torch", file=sys.stderr)
        return 1
    model.save(args.out)
    canonical_safetensors(args.out)
    total = time.perf_counter() - t_start
    print(f"wrote {args.out}: training {train_s:.0f} s, total {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
