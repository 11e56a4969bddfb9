# How close HF transformers' own bf16 run of the gemma3-mm-tiny fixture comes to its fp32 golden, measured as jtune's
# Gemma3MultimodalGoldenTest measures (per tensor ||x - golden|| / ||golden||): the reference stack's error that
# issue 15's GPU bf16 bounds are set against. Usage (on the GPU machine):
#   python3 hf_mm_bf16_precision.py <gemma3-mm-tiny dir> [device]
import json, statistics, sys
import torch
from safetensors.torch import load_file
from transformers import Gemma3ForConditionalGeneration

d = sys.argv[1]
device = sys.argv[2] if len(sys.argv) > 2 else ("cuda" if torch.cuda.is_available() else "cpu")
g = load_file(f"{d}/golden.safetensors")
ids, labels, tt = g["input_ids"].long().to(device), g["labels"].long().to(device), g["token_type_ids"].long().to(device)
pixels = g["pixel_values"]
golden_loss = json.load(open(f"{d}/golden.json"))["loss"]


def rel(x, ref):
    x, ref = x.double().cpu().reshape(-1), ref.double().reshape(-1)
    return ((x - ref).norm() / ref.norm()).item()


def run(name, dtype, attn):
    m = Gemma3ForConditionalGeneration.from_pretrained(d, dtype=dtype, attn_implementation=attn).to(device)
    m.train()
    px = pixels.to(device, dtype)
    o = m(input_ids=ids, pixel_values=px, token_type_ids=tt, attention_mask=torch.ones_like(ids), labels=labels)
    o.loss.backward()
    with torch.no_grad():
        vt = m.model.vision_tower(pixel_values=px).last_hidden_state
        feats = m.get_image_features(pixel_values=px)
        feats = getattr(feats, "pooler_output", feats)
        if isinstance(feats, (list, tuple)):
            feats = torch.cat(list(feats))
    out = {"vision tower": rel(vt, g["vision_last_hidden_state"]), "image features": rel(feats.reshape(-1, feats.shape[-1]), g["image_features"]),
           "logits": rel(o.logits, g["logits"])}
    grads = {n: rel(p.grad, g["grad." + n]) for n, p in m.named_parameters()
             if p.grad is not None and not n.endswith("self_attn.k_proj.bias")}  # analytically zero: no relative error
    worst = max(grads, key=grads.get)
    print(f"{name:26s} loss {o.loss.item():.6f} (relative {abs(o.loss.item() - golden_loss) / golden_loss:.2e}) "
          + ", ".join(f"{k} {v:.2e}" for k, v in out.items())
          + f"; gradients: worst {grads[worst]:.2e} ({worst}), median {statistics.median(grads.values()):.2e}", flush=True)


print(f"device {device}, torch {torch.__version__}")
run("fp32 weights (sanity)", torch.float32, "eager")
run("bf16 weights, eager", torch.bfloat16, "eager")
run("bf16 weights, sdpa", torch.bfloat16, "sdpa")
