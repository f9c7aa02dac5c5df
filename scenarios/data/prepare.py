"""Derive the shipped scenario datasets from the licensed public datasets in ../shared/datasets.

Run from the repository root: python3 scenarios/data/prepare.py /path/to/shared/datasets
Deterministic (fixed seeds); see SOURCE.md for licenses and what each file holds.
"""
import csv
import json
import random
import sys
from pathlib import Path

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets")
OUT = Path(__file__).resolve().parent


def write_jsonl(name, rows):
    with open(OUT / name, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(name, len(rows))


# GSM8K (MIT): question + final number.
rows = [json.loads(l) for l in open(SRC / "gsm8k/test.jsonl", encoding="utf-8")]
random.Random(5).shuffle(rows)
out = []
for i, r in enumerate(rows[:60]):
    answer = r["answer"].split("####")[-1].strip().replace(",", "")
    out.append({"id": f"gsm8k-{i+1}", "question": r["question"], "answer": answer})
write_jsonl("arithmetic_gsm8k.jsonl", out)

# BANKING77 (CC BY 4.0): 10 intents, 6 test utterances each.
INTENTS = [
    "card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed", "pin_blocked",
    "transfer_not_received_by_recipient", "cash_withdrawal_charge", "change_pin",
    "Refund_not_showing_up", "declined_card_payment",
]
by_intent = {k: [] for k in INTENTS}
with open(SRC / "banking77/test.csv", encoding="utf-8") as f:
    for r in csv.DictReader(f):
        if r["category"] in by_intent:
            by_intent[r["category"]].append(r["text"].strip())
rng = random.Random(77)
out = []
for k in INTENTS:
    picked = rng.sample(by_intent[k], 6)
    out.extend({"text": t, "intent": k.lower()} for t in picked)
rng.shuffle(out)
for i, r in enumerate(out):
    r["id"] = f"banking77-{i+1}"
write_jsonl("intent_banking77.jsonl", out)

# Restaurant-8k (CC BY 4.0): utterances with at least two slots, as expected JSON.
SLOTS = ["date", "time", "people", "first_name", "last_name"]
data = json.load(open(SRC / "restaurant8k_slots/test.json", encoding="utf-8"))
cands = []
for r in data:
    text = r["userInput"]["text"]
    labels = r.get("labels", [])
    if len(labels) < 2 or len(text) < 25:
        continue
    fields = {s: None for s in SLOTS}
    for l in labels:
        span = l["valueSpan"]
        fields[l["slot"]] = text[span.get("startIndex", 0):span["endIndex"]]
    cands.append({"text": text, "expected": json.dumps(fields, ensure_ascii=False)})
random.Random(8).shuffle(cands)
out = [dict(c, id=f"restaurant8k-{i+1}") for i, c in enumerate(cands[:60])]
write_jsonl("booking_restaurant8k.jsonl", out)

# Presidio synthetic PII (MIT): short sentences whose spans are all personal identifiers.
PII_TYPES = {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "STREET_ADDRESS",
             "US_SSN", "IBAN_CODE", "IP_ADDRESS"}
data = json.load(open(SRC / "presidio_pii_synth/synth_dataset_v2.json", encoding="utf-8"))
cands = []
for r in data:
    spans = r["spans"]
    if not spans or len(r["full_text"]) > 220 or "\n" in r["full_text"]:
        continue
    if "\ufffd" in r["full_text"] or "\u00bf" in r["full_text"]:  # mojibake in the source
        continue
    if any(s["entity_type"] not in PII_TYPES or len(s["entity_value"]) < 4 for s in spans):
        continue
    masked = r["masked"]
    for t in PII_TYPES:
        masked = masked.replace("{{" + t + "}}", "[" + t + "]")
    cands.append({"text": r["full_text"], "redacted": masked,
                  "pii": [s["entity_value"] for s in spans]})
random.Random(11).shuffle(cands)
out = [dict(c, id=f"presidio-{i+1}") for i, c in enumerate(cands[:60])]
write_jsonl("pii_presidio.jsonl", out)
