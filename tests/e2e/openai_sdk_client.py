"""End-to-end checks of `triage serve` with the official OpenAI Python SDK as the client.

Gateway A routes between its local SmolLM2 (`slm`, which also answers tool calls) and gateway B
(`llm`, a second `triage serve` with Gemma-3-270M) over real HTTP. Run by tests/e2e_gateways.rs, which starts both gateways:

    python3 openai_sdk_client.py main     A_URL B_LEDGER   # everything while B is up
    python3 openai_sdk_client.py fallback A_URL B_LEDGER   # after B was stopped

Every check prints one line; the first failed assertion exits non-zero with its reason.
"""
import json
import sys
import time
import urllib.request

import openai

import b_ledger

MODE, A_URL, B_LEDGER = sys.argv[1], sys.argv[2], sys.argv[3]
ALICE, BOB = "sk-alice-e2e", "sk-bob-e2e"


def client(key=ALICE):
    return openai.OpenAI(base_url=f"{A_URL}/v1", api_key=key, max_retries=0, timeout=300)


def b_rows():
    """Requests gateway B has answered, from B's own ledger."""
    return b_ledger.rows(B_LEDGER)


def b_rows_reach(n):
    """B's row count once it reaches `n`, waiting for its writer (see b_ledger.py)."""
    return b_ledger.rows_reach(B_LEDGER, n)


def chat_raw(c, content, **kw):
    """A non-streaming chat; returns (completion, response headers)."""
    raw = c.chat.completions.with_raw_response.create(
        model=kw.pop("model", "auto"),
        messages=[{"role": "user", "content": content}],
        max_tokens=kw.pop("max_tokens", 12),
        temperature=0,
        **kw,
    )
    return raw.parse(), raw.headers


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name} {detail}".rstrip(), flush=True)


def main_checks():
    c = client()
    # Non-streaming: a complete answer, and headers say who answered.
    before = b_rows()
    done, headers = chat_raw(c, "Name a primary colour.")
    check("non-streaming answer is complete", done.choices[0].finish_reason in ("stop", "length")
          and done.usage.completion_tokens > 0, repr(done.choices[0].message.content))
    check("default route goes to llm", headers.get("x-triage-backend") == "llm"
          and headers.get("x-triage-route") == "default", dict(headers))
    rows = b_rows_reach(before + 1)
    check("gateway B's ledger proves it answered", rows == before + 1, f"{before} -> {rows}")

    # Streaming with a usage chunk.
    stream = c.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Count to five."}],
        max_tokens=16, temperature=0, stream=True, stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    check("streaming answer arrives complete", finish in ("stop", "length") and text != ""
          and usage is not None and usage.completion_tokens > 0, repr(text))
    rows = b_rows_reach(before + 2)
    check("gateway B's ledger has the streamed answer", rows == before + 2, f"{before} -> {rows}")

    # A sentiment request is answered by the local SLM.
    before = b_rows()
    done, headers = chat_raw(c, "Review: 'I loved it.' Is the sentiment positive or negative?",
                             extra_headers={"x-triage-task": "sentiment"})
    check("sentiment is answered locally", headers.get("x-triage-backend") == "slm"
          and headers.get("x-triage-route") == "small-tasks", dict(headers))
    check("sentiment never reached B", b_rows() == before)

    # Tools on the local engine (the sentiment route): a forced call comes back as OpenAI
    # `tool_calls`, whole and streamed as deltas. `maxLength` bounds the argument in the grammar,
    # so the small model cannot loop inside the string until `max_tokens`.
    weather = {"type": "function", "function": {
        "name": "get_weather", "description": "The current weather in a city",
        "parameters": {"type": "object", "required": ["city"],
                       "properties": {"city": {"type": "string", "maxLength": 24}}}}}
    forced = {"type": "function", "function": {"name": "get_weather"}}
    done, headers = chat_raw(c, "What's the weather in Paris?", max_tokens=64, tools=[weather],
                             tool_choice=forced, extra_headers={"x-triage-task": "sentiment"})
    calls = done.choices[0].message.tool_calls or []
    args = json.loads(calls[0].function.arguments) if calls else None
    check("a local tool call comes back as tool_calls", headers.get("x-triage-backend") == "slm"
          and done.choices[0].finish_reason == "tool_calls" and len(calls) == 1
          and calls[0].id and calls[0].function.name == "get_weather"
          and isinstance(args, dict) and isinstance(args.get("city"), str), repr(done.choices[0]))
    stream = c.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        max_tokens=64, temperature=0, tools=[weather], tool_choice=forced, stream=True,
        extra_headers={"x-triage-task": "sentiment"})
    call_id, name, arguments, finish = None, "", "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            call_id = delta.id or call_id
            name += (delta.function and delta.function.name) or ""
            arguments += (delta.function and delta.function.arguments) or ""
        finish = chunk.choices[0].finish_reason or finish
    check("a streamed local tool call arrives whole", finish == "tool_calls" and call_id
          and name == "get_weather" and isinstance(json.loads(arguments), dict), f"{name} {arguments!r} {finish}")

    # A prompt with an e-mail address never reaches B, even with stream on.
    before = b_rows()
    done, headers = chat_raw(c, "Write a reply to jane.doe@example.com about her order.")
    check("PII request stays local", headers.get("x-triage-backend") == "slm"
          and headers.get("x-triage-route") == "private", dict(headers))
    check("PII request never reached B", b_rows() == before)

    # Errors are OpenAI error objects the SDK raises as its own exception types.
    try:
        chat_raw(c, "hi", model="no-such-model")
        check("unknown model is 404", False, "no exception")
    except openai.NotFoundError as e:
        check("unknown model is 404 NotFoundError", e.status_code == 404
              and e.body.get("code") == "model_not_found", str(e.body))
    try:
        client("sk-wrong").chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
        check("bad key is 401", False, "no exception")
    except openai.AuthenticationError as e:
        check("bad key is 401 AuthenticationError", e.status_code == 401, str(e.body))
    try:
        c.post("/chat/completions", body={"messages": "not a list"}, cast_to=object)
        check("malformed body is 400", False, "no exception")
    except openai.BadRequestError as e:
        check("malformed body is 400 BadRequestError", e.status_code == 400, str(e.body))

    # Bob's budget is tiny ($0.04: one request's worst case, 12 tokens out at $1,000/M, fits; two do
    # not): once spent + reserved leaves no room his LLM-bound requests go to the SLM.
    bob = client(BOB)
    backends = []
    for _ in range(6):
        _, headers = chat_raw(bob, "Name a fruit.")
        backends.append(headers.get("x-triage-backend"))
        if backends[-1] == "slm":
            break
    check("spent budget routes to the SLM", backends[0] == "llm" and backends[-1] == "slm", str(backends))
    _, headers = chat_raw(client(), "Name a vegetable.")
    check("other tenants still reach the LLM", headers.get("x-triage-backend") == "llm", dict(headers))
    # Every request A sent B is in B's ledger, and nothing else is: a late row from the local-only
    # requests above would show here.
    expected = before + backends.count("llm") + 1
    rows = b_rows_reach(expected)
    time.sleep(0.5)
    check("B answered exactly the requests A routed to it", rows == expected == b_rows(),
          f"expected {expected}, B has {b_rows()}")

    # /metrics and the events stream exist.
    metrics = urllib.request.urlopen(f"{A_URL}/metrics", timeout=10).read().decode()
    check("metrics have TTFT, inter-token and end-to-end histograms",
          all(f"{name}_bucket{{" in metrics for name in (
              "triage_time_to_first_token_seconds", "triage_inter_token_seconds",
              "triage_request_duration_seconds")),
          "\n".join(l for l in metrics.splitlines() if l.startswith("# TYPE")))


def fallback_checks():
    done, headers = chat_raw(client(), "Name an animal.")
    check("with B stopped the fallback answers", headers.get("x-triage-backend") == "slm"
          and done.choices[0].message.content, dict(headers))


{"main": main_checks, "fallback": fallback_checks}[MODE]()
print("all checks passed")
