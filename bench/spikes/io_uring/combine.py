import os
import json
HERE = os.path.dirname(os.path.abspath(__file__))
out = open(os.path.join(HERE, "all.jsonl"), "w")
for b, f in enumerate(["results.jsonl", "results2.jsonl", "results3.jsonl", "results4.jsonl"]):
    try:
        for l in open(os.path.join(HERE, f)):
            d = json.loads(l); d["round"] += 100 * (b + 1); d["batch"] = b + 1
            out.write(json.dumps(d) + "\n")
    except FileNotFoundError:
        pass
