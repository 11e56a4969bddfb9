# How close HF transformers + peft's own reduced-precision runs come to the fp32 LoRA gradients of the
# gemma3-tiny-lora fixture (golden.safetensors), measured the way jtune's LoraGoldenTest measures
# (per tensor ||g - golden|| / ||golden||). Tells what the bf16 bound of issue 5 costs the reference stack.
# Usage: python3 hf_lora_grad_precision.py <gemma3-tiny dir> <gemma3-tiny-lora dir> [device]
import contextlib, statistics, sys
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from peft import PeftModel

base_dir, lora_dir = sys.argv[1], sys.argv[2]
device = sys.argv[3] if len(sys.argv) > 3 else ("cuda" if torch.cuda.is_available() else "cpu")
batch = load_file(f"{base_dir}/golden.safetensors")
golden = load_file(f"{lora_dir}/golden.safetensors")
ids, labels = batch["input_ids"].long().to(device), batch["labels"].long().to(device)


def rel(g, ref):
    g, ref = g.double().cpu(), ref.double()
    return ((g - ref).norm() / ref.norm()).item()


def run(name, weights, autocast, attn):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=weights, attn_implementation=attn).to(device)
    model = PeftModel.from_pretrained(base, lora_dir, is_trainable=True)  # adapters in fp32 (peft's autocast_adapter_dtype)
    model.train()
    ctx = torch.autocast(device_type=device, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with ctx:
        loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    errors = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            errors[n] = rel(p.grad, golden["grad." + n])
    worst = max(errors, key=errors.get)
    values = sorted(errors.values())
    print(f"{name:34s} loss {loss.item():.6f}  LoRA grads: worst {errors[worst]:.2e} ({worst.replace('base_model.model.model.', '')}), "
          f"median {statistics.median(values):.2e}, over 2e-2: {sum(v > 2e-2 for v in values)}/{len(values)}", flush=True)


print(f"device {device}, torch {torch.__version__}")
run("fp32 weights, fp32 (sanity)", torch.float32, False, "eager")
run("bf16 weights, eager attention", torch.bfloat16, False, "eager")
run("bf16 weights, sdpa attention", torch.bfloat16, False, "sdpa")
run("fp32 weights, autocast bf16, eager", torch.float32, True, "eager")
run("fp32 weights, autocast bf16, sdpa", torch.float32, True, "sdpa")
