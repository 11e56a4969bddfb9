# Loads what bench/HfInterop wrote with HF transformers + peft and compares logits with jtune's.
# Usage: python3 hf_interop.py <base checkpoint dir> <HfInterop output dir>
import json, sys
import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel

base_dir, out_dir = sys.argv[1], sys.argv[2]
expected = json.load(open(f"{out_dir}/jtune_logits.json"))
ids = torch.tensor([expected["ids"]])

def rel(a, b):
    a, b = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    return ((a - b).norm() / b.norm()).item()

base = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32, attn_implementation="eager")
peft = PeftModel.from_pretrained(base, f"{out_dir}/adapter").eval()
with torch.no_grad():
    adapter_logits = peft(ids).logits[0].flatten().tolist()
print(f"peft PeftModel.from_pretrained(jtune adapter): logits relative difference to jtune {rel(adapter_logits, expected['adapter']):.2e}", flush=True)
merged = AutoModelForCausalLM.from_pretrained(f"{out_dir}/merged", torch_dtype=torch.float32, attn_implementation="eager").eval()
with torch.no_grad():
    merged_logits = merged(ids).logits[0].flatten().tolist()
print(f"transformers from_pretrained(jtune merged export): logits relative difference to jtune {rel(merged_logits, expected['merged']):.2e}")
