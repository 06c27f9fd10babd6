# Makes a LLaMA checkpoint with HF transformers that the engine's tests have never seen, computes
# HF's per-token log-probabilities for a few inputs, and compares them with `spark-rlhf logprobs`
# output. Run where PyTorch and transformers are installed (the GPU machine):
#   python3 tools/hf_unseen_check.py make DIR TOKENIZER_JSON   -> DIR/{config.json,model.safetensors,tokenizer.json,input.jsonl,expected.jsonl}
#   python3 tools/hf_unseen_check.py compare DIR/expected.jsonl OUT.jsonl
import json, shutil, sys, os

def make(d, tok):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(20261123)
    cfg = LlamaConfig(vocab_size=512, hidden_size=96, intermediate_size=224, num_hidden_layers=3,
                      num_attention_heads=6, num_key_value_heads=3, rope_theta=500000.0, rms_norm_eps=1e-6,
                      max_position_embeddings=512, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                      tie_word_embeddings=False, initializer_range=0.08)
    m = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # norms away from 1 so that their weights are exercised
        for n, p in m.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
    os.makedirs(d, exist_ok=True)
    m.save_pretrained(d, safe_serialization=True)
    shutil.copy(tok, os.path.join(d, "tokenizer.json"))
    g = torch.Generator().manual_seed(7)
    rows = [{"input_ids": torch.randint(3, 512, (n,), generator=g).tolist()} for n in (2, 9, 33, 130, 300)]
    rows.append({"text": "Reinforcement learning from human feedback, on Spark executors."})
    from tokenizers import Tokenizer
    t = Tokenizer.from_file(tok)
    with open(os.path.join(d, "input.jsonl"), "w") as fin, open(os.path.join(d, "expected.jsonl"), "w") as fexp:
        for r in rows:
            fin.write(json.dumps(r) + "\n")
            ids = r["input_ids"] if "input_ids" in r else t.encode(r["text"], add_special_tokens=False).ids
            x = torch.tensor([ids])
            with torch.no_grad():
                lp = torch.log_softmax(m(x).logits.double(), -1)[0]
            tl = lp[:-1].gather(-1, x[0, 1:, None])[:, 0].tolist()
            fexp.write(json.dumps({"input_ids": ids, "token_logprobs": tl}) + "\n")
    print("config:", json.dumps({k: v for k, v in json.load(open(os.path.join(d, "config.json"))).items()
                                 if k in ("num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                                          "hidden_size", "rope_parameters", "rope_theta", "rms_norm_eps")}))

def compare(exp_path, out_path):
    worst = 0.0
    n = 0
    for i, (e, o) in enumerate(zip(open(exp_path), open(out_path))):
        e, o = json.loads(e), json.loads(o)
        a, b = e["token_logprobs"], o["token_logprobs"]
        assert len(a) == len(b), f"line {i+1}: {len(a)} expected logprobs, got {len(b)}"
        d = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
        print(f"line {i+1}: {len(a)+1} tokens, max |ours - HF| = {d:.3e}")
        worst = max(worst, d)
        n += len(a)
    print(f"all {n} token logprobs: max |ours - HF| = {worst:.3e} ({'PASS' if worst <= 1e-4 else 'FAIL'} at 1e-4)")
    sys.exit(0 if worst <= 1e-4 else 1)

if __name__ == "__main__":
    {"make": lambda: make(sys.argv[2], sys.argv[3]), "compare": lambda: compare(sys.argv[2], sys.argv[3])}[sys.argv[1]]()
