# Loads what `jtune merge` wrote with HF transformers, and the same adapter on the same base with peft, and compares.
# Usage: python3 hf_load_merged.py <base dir> <adapter dir> <merged dir>
# Prints: the merged checkpoint's config dtype and tensor dtypes as loaded, the relative difference between the
# merged model's logits and base + PeftModel adapter logits (fp32 compute), and a greedy continuation.
import json, sys
import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel

base_dir, adapter_dir, merged_dir = sys.argv[1:4]
cfg = json.load(open(f"{merged_dir}/config.json"))
print(f"merged config.json dtype: {cfg.get('dtype', cfg.get('torch_dtype'))}", flush=True)
merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype="auto").eval()
print(f"transformers from_pretrained({merged_dir}): ok, {sum(p.numel() for p in merged.parameters()):,} parameters, "
      f"dtypes {sorted({str(p.dtype) for p in merged.parameters()})}", flush=True)
vocab = merged.config.vocab_size
g = torch.Generator().manual_seed(0)
ids = torch.cat([torch.tensor([[2]]), torch.randint(3, vocab, (1, 31), generator=g)], dim=1)
merged32 = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32, attn_implementation="eager").eval()
base32 = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")
peft = PeftModel.from_pretrained(base32, adapter_dir).eval()
with torch.no_grad():
    a = merged32(ids).logits.double()
    b = peft(ids).logits.double()
print(f"merged vs base + peft adapter: logits relative difference {((a - b).norm() / b.norm()).item():.2e}", flush=True)
with torch.no_grad():
    out = merged.generate(ids[:, :8], max_new_tokens=8, do_sample=False)
print(f"greedy continuation of the merged model in {merged.dtype}: {out[0, 8:].tolist()}")
# the same comparison in bf16, as a GPU run generates: HF's own unmerged (base + peft) against merged greedy tokens
if torch.cuda.is_available():
    m16 = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.bfloat16).cuda().eval()
    b16 = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.bfloat16), adapter_dir).cuda().eval()
    x = ids[:, :8].cuda()
    with torch.no_grad():
        la, lb = m16(ids.cuda()).logits.double(), b16(ids.cuda()).logits.double()
        ga = m16.generate(x, max_new_tokens=12, do_sample=False)[0, 8:].tolist()
        gb = b16.generate(x, max_new_tokens=12, do_sample=False)[0, 8:].tolist()
    print(f"bf16 on the GPU: merged vs base + peft logits relative difference {((la - lb).norm() / lb.norm()).item():.2e}; "
          f"greedy merged {ga} vs base + peft {gb}: {'same' if ga == gb else 'different'}")
