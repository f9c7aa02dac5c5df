"""`/v1/embeddings` through `triage serve` with the official OpenAI Python SDK as the client.

Gateway A answers `emb` from its in-process all-MiniLM-L6-v2 and forwards `remote` to gateway B
(another `triage serve`); a privacy rule keeps personal data local. Run by
tests/e2e_embeddings.rs, which starts both gateways:

    python3 openai_sdk_embeddings.py A_URL A_LEDGER B_LEDGER REFERENCE_JSON

Every check prints one line; the first failed assertion exits non-zero with its reason.
"""
import json
import math
import sqlite3
import sys
import time

import openai

A_URL, A_LEDGER, B_LEDGER, REFERENCE = sys.argv[1:5]
client = openai.OpenAI(base_url=f"{A_URL}/v1", api_key="unused", max_retries=0, timeout=120)
reference = json.load(open(REFERENCE))["items"]


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def rows(ledger, where):
    # The ledger writer flushes in the background: wait a little for the row.
    for _ in range(50):
        con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
        try:
            n = con.execute(f"SELECT COUNT(*) FROM ledger WHERE {where}").fetchone()[0]
        finally:
            con.close()
        if n:
            return n
        time.sleep(0.1)
    return 0


def expect_error(name, cls, status, needle, **kw):
    try:
        client.embeddings.create(**kw)
    except cls as e:
        check(name, e.status_code == status and needle in str(e), f"{e.status_code} {e}")
        return
    check(name, False, "no error")


# The SDK asks for base64 by default and decodes it: the local vector matches the reference.
first = reference[0]
r = client.embeddings.create(model="emb", input=first["text"])
check("local: one vector of 384", len(r.data) == 1 and len(r.data[0].embedding) == 384)
c = cosine(r.data[0].embedding, first["embedding"])
check("local: cosine to the numpy reference >= 0.999", c >= 0.999, c)
check("local: usage counts [CLS] and [SEP]",
      r.usage.prompt_tokens == len(first["token_ids"]) == r.usage.total_tokens, r.usage)

texts = [item["text"] for item in reference]
r = client.embeddings.create(model="emb", input=texts, encoding_format="float")
check("local: a list gives one vector per input, in order",
      [d.index for d in r.data] == list(range(len(texts))))
worst = min(cosine(d.embedding, item["embedding"]) for d, item in zip(r.data, reference))
check("local: every reference sentence within 1e-3 cosine", worst >= 0.999, worst)

# Pass-through: gateway B computes the same model's vectors.
remote = client.embeddings.create(model="remote", input=texts[:2], encoding_format="float")
same = min(cosine(x.embedding, y.embedding) for x, y in zip(remote.data, r.data[:2]))
check("remote: forwarded to the upstream and answered", same >= 0.9999, same)
check("remote: the upstream ledgered it", rows(B_LEDGER, "task = 'embedding' AND status = 200") >= 1)

# Privacy: personal data never goes to the remote embedding backend; locally it is fine.
pii = "Please email jane.doe@example.com about invoice 42"
expect_error("remote + PII: 403 by the privacy rule", openai.PermissionDeniedError, 403,
             "personal data", model="remote", input=pii)
r = client.embeddings.create(model="emb", input=pii)
check("local + PII: answered", len(r.data[0].embedding) == 384)

# Errors, OpenAI-shaped.
expect_error("dimensions the model lacks: 400", openai.BadRequestError, 400, "384",
             model="emb", input="hi", dimensions=128)
expect_error("empty input: 400", openai.BadRequestError, 400, "empty", model="emb", input="")
expect_error("too long input: 400", openai.BadRequestError, 400, "256",
             model="emb", input="word " * 400)
expect_error("a chat model: 404", openai.NotFoundError, 404, "emb", model="slm", input="hi")

check("gateway A ledgered its embeddings",
      rows(A_LEDGER, "task = 'embedding' AND answered_by = 'emb' AND status = 200") >= 3)
check("gateway A ledgered the refusal",
      rows(A_LEDGER, "task = 'embedding' AND status = 403") == 1)
