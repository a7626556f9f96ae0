"""Prints the AUC and KS of an evaluation's metrics (`fedflow --json output metric` on stdin)
as `AUC 0.99236 KS 0.92762`; exits non-zero naming what is missing."""
import json
import sys


def main():
    doc = json.load(sys.stdin)
    found = {}

    def walk(v):
        if isinstance(v, dict):
            if v.get("metric") in ("auc", "ks") and isinstance(v.get("val"), (int, float)):
                found.setdefault(v["metric"], v["val"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(doc)
    if "auc" not in found or "ks" not in found:
        sys.exit("no auc/ks in the evaluation metrics: " + json.dumps(doc)[:2000])
    print("AUC %.5f KS %.5f" % (found["auc"], found["ks"]))


if __name__ == "__main__":
    main()
