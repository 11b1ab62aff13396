"""How many CWE name -> id facts can a LoRA on the bundled 135M model learn, and at how many epochs? (issue 11)

The recipe teaches 75 CWEs (4 name->id phrasings + 1 id->name each, 2 epochs) and reached an id accuracy of 0 on
the gate's held-in items. This bench isolates the lever: a facts-only SFT set (the recipe's own
``catalog_records``, so the same phrasings and packing) for the first ``k`` of the recipe's CWEs, trained with
the recipe's LoRA settings for ``e`` epochs (``id_answers=recall``), then asked each taught fact, greedy, twice:
word for word as one of its training questions, and in a phrasing it never saw ("Which CWE number corresponds
to <name>?", as the gate does). Recall = share of answers that name the right CWE id; ``other real id`` =
share that name a different, real CWE (the gate's wrong_id_rate).

Run: ``.venv/bin/python bench/fact_recall.py --points 8x16,24x12,75x4`` (k x epochs; ~25 min on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

HELD_OUT_QUESTION = "Which CWE number corresponds to {name}?"  # not among recipe.NAME_TO_ID_Q


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", default="8x16,24x12,75x4", help="k x epochs, comma-separated")
    parser.add_argument("--phrasings", type=int, default=4)
    parser.add_argument("--per-chat", type=int, default=8,
                        help="facts per conversation (the recipe's 8, packed; 1 = one fact per training row, unpacked)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("SECOPS_HOME", tempfile.mkdtemp(prefix="secops-fact-recall-"))

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from secops_ai.config import get_settings
    from secops_ai.config.settings import DEFAULT_SYSTEM_PROMPT
    from secops_ai.data.generators import _Sources, recipe, recipe_cwes
    from secops_ai.data.store import DatasetStore
    from secops_ai.evals.identifiers import cited_ids
    from secops_ai.inference.loader import prepare_base_model
    from secops_ai.training.config import RunConfig
    from secops_ai.training.runner import train

    settings = get_settings()
    base = prepare_base_model(settings.workspace.ensure())
    store = DatasetStore(settings.workspace)
    if not store.exists("starter/cwe-catalog@1"):
        subprocess.run([sys.executable, "-m", "secops_ai.cli.main", "data", "build-starter"], check=True,
                       stdout=subprocess.DEVNULL)
    cwes = recipe_cwes(_Sources([store.get("starter/cwe-catalog@1")]))
    tok = AutoTokenizer.from_pretrained(base)
    rows = []
    for point in args.points.split(","):
        k, epochs = (int(x) for x in point.lower().split("x"))
        taught = cwes[:k]
        records = list(recipe.catalog_records(taught, [], seed=0, system_prompt=DEFAULT_SYSTEM_PROMPT,
                                              phrasings=args.phrasings, per_conversation=args.per_chat))
        manifest = store.create("facts", f"k{k}-e{epochs}-c{args.per_chat}", "chat", records)
        config = RunConfig.from_yaml(ROOT / "configs" / "sft_smollm2_recipe.yaml",
                                     [f"dataset={manifest.ref}", f"num_train_epochs={epochs}",
                                      # one fact per example means one per row: packing would fold them back
                                      f"packing={'false' if args.per_chat == 1 else 'true'}"])
        start = time.perf_counter()
        result = train(config, settings, run_id=f"facts-k{k}-e{epochs}-c{args.per_chat}", progress=False)
        minutes = (time.perf_counter() - start) / 60
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                                          result.run_dir).eval()
        def ask(question: str, model=model) -> list[str]:
            msgs = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": question}]
            ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            with torch.no_grad():
                out = model.generate(**ids, max_new_tokens=24, do_sample=False)
            answer = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
            return [x.id for x in cited_ids(answer) if x.id.startswith("CWE-") and x.exists]

        # a question as it was trained (the first phrasing of each fact), and the gate's situation: a new one
        trained = {}
        for r in records:
            msgs = r["messages"]
            for q, a in itertools.pairwise(msgs):
                if q["role"] != "user" or a["role"] != "assistant":
                    continue
                for c in taught:
                    if c["name"] in q["content"] and f"CWE-{c['id']}" in a["content"]:
                        trained.setdefault(c["id"], q["content"])
        seen = right = other = 0
        for c in taught:
            seen += f"CWE-{c['id']}" in ask(trained[c["id"]])
            named = ask(HELD_OUT_QUESTION.format(name=c["name"]))
            right += f"CWE-{c['id']}" in named
            other += bool(named) and f"CWE-{c['id']}" not in named
        steps = result.metrics.get("global_step")
        rows.append((k, epochs, len(records), steps, minutes, seen / k, right / k, other / k))
        print(f"{manifest.ref}: {len(records)} chats, {minutes:.1f} min, recall {seen}/{k} as trained, {right}/{k} "
              f"in a new phrasing (other real id {other}/{k})", flush=True)
    print(f"\n{args.per_chat} facts per conversation")
    print("| facts (k) | epochs | chats | optimizer steps | train min | recall, trained phrasing "
          "| recall, new phrasing | other real id (new phrasing) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for k, e, n, st, m, s, r, o in rows:
        print(f"| {k} | {e} | {n} | {st} | {m:.1f} | {s:.2f} | {r:.2f} | {o:.2f} |")


if __name__ == "__main__":
    main()
