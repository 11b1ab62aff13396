"""Can the bundled 135M model learn the gate's multiple-choice skill from many fresh items? (issue 19)

The gate's task-accuracy items (held-out CWEs: description -> which weakness; weakness -> which mitigation)
are answered 88-95 % right by picking the option that shares the most words with the question, and the
bundled model scores chance. Evolve's pairs and the recipe's 75 multiple-choice SFT items did not move it.
This bench asks the direct question: supervised fine-tuning on *many* items of the same two shapes, built from
CWEs that are neither held out nor in the gate (about 500 Base/Variant weaknesses), every item new (no item is
seen twice), LoRA r16 on every linear layer, loss on the answer only. It prints:

- the training loss on the answer letter: items are fresh, so a loss below ln 4 = 1.386 (one letter of
  four) means the model picks better than chance on unseen items of the training distribution;
- the accuracy on the default gate's 60 held-out task-accuracy items (greedy, parsed as the gate parses).

Run: ``.venv/bin/python bench/choice_learning.py --steps 600 --batch 4 --lr 5e-4`` (~40 min on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--eval-every", type=int, default=150)
    parser.add_argument("--target", choices=["letter", "full"], default="letter",
                        help="answer trained on: the letter alone, or 'B) <option text>'")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("SECOPS_HOME", tempfile.mkdtemp(prefix="secops-choice-"))

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from secops_ai.alignment.keyed import reading_pool
    from secops_ai.config import get_settings
    from secops_ai.config.settings import DEFAULT_SYSTEM_PROMPT
    from secops_ai.data.text import clip
    from secops_ai.evals.suites.base import SuiteConfig
    from secops_ai.evals.suites.task_accuracy import LETTERS, TaskAccuracySuite, _question, _strip_phase, parse_choice
    from secops_ai.inference.loader import prepare_base_model

    torch.set_num_threads(os.cpu_count() or 2)
    torch.manual_seed(0)
    base = prepare_base_model(get_settings().workspace.ensure())
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)

    pool = reading_pool()  # what evolve's keyed stage draws from: Base/Variant, current, never held out
    rng = random.Random(0)

    def item(i: int) -> tuple[str, str]:
        """The gate's two item shapes on a non-held-out CWE; the key's letter cycles within each shape."""
        c = rng.choice(pool)
        others = [o for o in pool if o.id != c.id and c.id not in o.parents and o.id not in c.parents]
        ds = rng.sample(others, 3)
        if i % 2 == 0:
            opts = [c.name] + [d.name for d in ds]
            stem = f"Which weakness does this describe?\n\"{clip(c.description, 400)}\""
        else:
            opts = [clip(_strip_phase(c.mitigations[0]), 220)] + [
                clip(_strip_phase(rng.choice(d.mitigations)), 220) for d in ds]
            stem = f"Which mitigation addresses the weakness '{c.name}'?"
        k = (i // 2) % 4
        wrong = opts[1:]
        rng.shuffle(wrong)
        answer = LETTERS[k] + (f") {opts[0]}" if args.target == "full" else "")
        return _question(stem, [*wrong[:k], opts[0], *wrong[k:]]), answer

    n = args.steps * args.batch
    train = [item(i) for i in range(n)]
    rng.shuffle(train)

    def encode(question: str, answer: str) -> tuple[list[int], list[int]]:
        msgs = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": question}]
        prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        target = tok.encode(answer + "<|im_end|>", add_special_tokens=False)
        return prompt + target, [-100] * len(prompt) + target

    gate_items = TaskAccuracySuite().build(SuiteConfig(samples=60), seed=1234)  # the default gate's items

    def evaluate() -> tuple[float, dict]:
        model.eval()
        right, letters = 0, {}
        for it in gate_items:
            msgs = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, *it.messages]
            ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)["input_ids"]
            with torch.no_grad():
                out = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.eos_token_id)
            choice = parse_choice(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
            letters[choice] = letters.get(choice, 0) + 1
            right += choice == it.expected
        model.train()
        return right / len(gate_items), letters

    acc, letters = evaluate()
    print(f"step 0: held-out accuracy {acc:.3f} (answers {letters}); reading pool {len(pool)} CWEs", flush=True)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0,
                                             task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    model.train()
    started, letter_loss = time.time(), []
    for step in range(1, args.steps + 1):
        rows = [encode(*train[(step - 1) * args.batch + j]) for j in range(args.batch)]
        width = max(len(x) for x, _ in rows)
        ids = torch.tensor([x + [tok.eos_token_id] * (width - len(x)) for x, _ in rows])
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in rows])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in rows])
        for group in opt.param_groups:  # 20 warm-up steps, then linear decay to a tenth
            group["lr"] = args.lr * min(1.0, step / 20) * (0.1 + 0.9 * (1 - step / args.steps))
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        with torch.no_grad():  # the loss on the letter alone (the first answer token of each row)
            logp = torch.log_softmax(out.logits[:, :-1].float(), -1)
            first = [(r, y.index(next(t for t in y if t != -100)) - 1) for r, (_, y) in enumerate(rows)]
            letter_loss.append(-sum(logp[r, p, ids[r, p + 1]].item() for r, p in first) / len(first))
        if step % 25 == 0:
            recent = letter_loss[-25:]
            print(f"step {step}: letter loss {sum(recent) / len(recent):.3f} (chance {math.log(4):.3f}), "
                  f"{time.time() - started:.0f} s", flush=True)
        if step % args.eval_every == 0 or step == args.steps:
            acc, letters = evaluate()
            print(f"step {step}: held-out accuracy {acc:.3f} (answers {letters}), {step * args.batch} items seen",
                  flush=True)


if __name__ == "__main__":
    main()
