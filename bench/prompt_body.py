"""Write a chat request whose user prompt is about KB kilobytes of ordinary prose without
personal data (the PII scan reads all of it and finds nothing): the prompt-size body of
bench/gateway_overhead.sh and bench/gateway_callgrind.sh.

usage: python3 bench/prompt_body.py OUT.json KB
"""
import json
import sys

out, kb = sys.argv[1], int(sys.argv[2])
words = ("the service was quick and the staff were friendly although the room was small "
         "and the view of the harbour was partly hidden by a crane ").split()
text, i, size = [], 0, 0
while size < kb * 1024:
    text.append(words[i % len(words)]); size += len(text[-1]) + 1; i += 1
body = {"model": "auto", "max_tokens": 8, "messages": [
    {"role": "user", "content": "Summarise this review in one line: " + " ".join(text)}]}
with open(out, "w") as f:
    f.write(json.dumps(body))
