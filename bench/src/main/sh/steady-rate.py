"""The steady rate of a jtune run: real (non-pad) tokens per second over the steps after a warm-up, from its
metrics.jsonl (cumulative tokens and elapsed time at each logged step), i.e. the mean over those steps' times,
not one step's rate. Runs on the GPU machine (python3, no packages).
Usage: python3 steady-rate.py <metrics.jsonl> <warm-up steps>"""
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if '"num_input_tokens_seen"' in line]
warm = int(sys.argv[2])
start = next((r for r in rows if r["step"] == warm), None)
end = rows[-1] if rows else None
if start is None or end["step"] <= warm:
    print(f"steady rate: no logged step {warm} or none after it ({len(rows)} rows)")
else:
    tokens = end["num_input_tokens_seen"] - start["num_input_tokens_seen"]
    seconds = end["elapsed_seconds"] - start["elapsed_seconds"]
    steps = end["step"] - warm
    print(f"steady rate over steps {warm + 1}-{end['step']}: {tokens / seconds:,.0f} tokens/s, "
          f"{seconds / steps * 1e3:.1f} ms a step ({tokens:,} tokens in {seconds:.1f} s)")
