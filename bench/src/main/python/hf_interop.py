# Loads what bench/HfInterop wrote with HF transformers + peft and compares logits with jtune's.
# Usage: python3 hf_interop.py <base checkpoint dir> <HfInterop output dir>
# A text base: AutoModelForCausalLM + PeftModel. An image-text base (config.json has a vision_config):
# Gemma3ForConditionalGeneration + PeftModel with the adapter's non_lora_state_dict.safetensors loaded beside it (as
# Gemma3-Finetune's scripts load it), fed jtune's pixel_values and token types.
import json, sys
import torch
from peft import PeftModel

base_dir, out_dir = sys.argv[1], sys.argv[2]
expected = json.load(open(f"{out_dir}/jtune_logits.json"))
ids = torch.tensor([expected["ids"]])
image_text = "vision_config" in json.load(open(f"{base_dir}/config.json"))


def rel(a, b):
    a, b = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    return ((a - b).norm() / b.norm()).item()


if image_text:
    from safetensors.torch import load_file
    from transformers import Gemma3ForConditionalGeneration as Model
    pixels = load_file(f"{out_dir}/pixel_values.safetensors")["pixel_values"]
    inputs = dict(input_ids=ids, pixel_values=pixels, token_type_ids=torch.tensor([expected["token_type_ids"]]),
                  attention_mask=torch.ones_like(ids))
else:
    from transformers import AutoModelForCausalLM as Model
    inputs = dict(input_ids=ids)

base = Model.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")
peft = PeftModel.from_pretrained(base, f"{out_dir}/adapter").eval()
if image_text:
    non_lora = load_file(f"{out_dir}/adapter/non_lora_state_dict.safetensors")
    missing, unexpected = peft.base_model.model.load_state_dict(non_lora, strict=False)
    print(f"non_lora_state_dict: {len(non_lora)} tensors, unexpected {unexpected}", flush=True)
    adapted = sorted({n.split(".lora_")[0] for n, _ in peft.named_parameters() if ".lora_A." in n})
    print(f"peft adapted {len(adapted)} modules ({sum('vision_tower' in m for m in adapted)} in the vision tower)", flush=True)
with torch.no_grad():
    adapter_logits = peft(**inputs).logits[0].flatten().tolist()
print(f"peft PeftModel.from_pretrained(jtune adapter): logits relative difference to jtune {rel(adapter_logits, expected['adapter']):.2e}", flush=True)
merged = Model.from_pretrained(f"{out_dir}/merged", dtype=torch.float32, attn_implementation="eager").eval()
with torch.no_grad():
    merged_logits = merged(**inputs).logits[0].flatten().tolist()
print(f"transformers from_pretrained(jtune merged export): logits relative difference to jtune {rel(merged_logits, expected['merged']):.2e}")
