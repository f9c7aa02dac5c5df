"""End-to-end checks of `triage serve`'s `/v1/messages` with the official Anthropic Python SDK.

Gateway A routes between its local SmolLM2 (`slm`), gateway B (`llm`, a second `triage serve`
with Gemma-3-270M, reached with triage's own Anthropic backend, so B answers on its
`/v1/messages`) and `claude` (a TEST DOUBLE Anthropic upstream in the Rust test that replays a
recorded tool-use answer). Run by tests/e2e_anthropic.rs, which starts all three:

    python3 anthropic_sdk_client.py main     A_URL B_LEDGER   # everything while B is up
    python3 anthropic_sdk_client.py fallback A_URL B_LEDGER   # after B was stopped

Every check prints one line; the first failed assertion exits non-zero with its reason.
"""
import sys

import anthropic

import b_ledger

MODE, A_URL, B_LEDGER = sys.argv[1], sys.argv[2], sys.argv[3]
ALICE, BOB = "sk-alice-e2e", "sk-bob-e2e"
LOCAL = {"x-triage-task": "sentiment"}  # the small-tasks route: answered by the local SLM
WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                     "required": ["location"]},
}


def client(key=ALICE):
    return anthropic.Anthropic(base_url=A_URL, api_key=key, max_retries=0, timeout=300)


def b_rows():
    """Requests gateway B has answered, from B's own ledger."""
    return b_ledger.rows(B_LEDGER)


def create_raw(c, content, **kw):
    """A non-streaming message; returns (message, response headers)."""
    raw = c.messages.with_raw_response.create(
        model=kw.pop("model", "auto"),
        max_tokens=kw.pop("max_tokens", 12),
        messages=kw.pop("messages", [{"role": "user", "content": content}]),
        # anthropic 2.x no longer lists `temperature`; the API (and triage) still take it.
        extra_body={"temperature": 0},
        **kw,
    )
    return raw.parse(), raw.headers


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name} {detail}".rstrip(), flush=True)


def b_rows_reach(n):
    """B's row count once it reaches `n`, waiting for its writer (see b_ledger.py)."""
    return b_ledger.rows_reach(B_LEDGER, n)


def main_checks():
    c = client()
    # Non-streaming through the default route: gateway B answers on its own /v1/messages.
    before = b_rows()
    m, headers = create_raw(c, "Name a primary colour.")
    check("a message comes back whole", m.type == "message" and m.role == "assistant"
          and m.id.startswith("msg_") and m.content and m.content[0].type == "text"
          and m.stop_reason in ("end_turn", "max_tokens") and m.usage.output_tokens > 0,
          repr(m))
    check("default route goes to llm", headers.get("x-triage-backend") == "llm"
          and headers.get("x-triage-route") == "default", dict(headers))
    rows = b_rows_reach(before + 1)
    check("gateway B's ledger proves it answered", rows == before + 1, f"{before} -> {rows}")
    start = before

    # Streaming: the SDK's event parser sees Anthropic's event sequence.
    with c.messages.stream(model="auto", max_tokens=16, extra_body={"temperature": 0},
                           messages=[{"role": "user", "content": "Count to five."}]) as s:
        kinds = [event.type for event in s]
        final = s.get_final_message()
    check("stream events come in Anthropic's order", kinds[0] == "message_start"
          and kinds[-1] == "message_stop" and "content_block_start" in kinds
          and "message_delta" in kinds, str(kinds))
    check("streamed message is complete", final.content and final.content[0].text != ""
          and final.stop_reason in ("end_turn", "max_tokens") and final.usage.output_tokens > 0,
          repr(final))

    # The system prompt reaches the model: the same question costs more prompt tokens with it.
    plain, _ = create_raw(c, "Is 'I loved it' positive?", extra_headers=LOCAL)
    system, headers = create_raw(c, "Is 'I loved it' positive?", extra_headers=LOCAL,
                                 system="You are a careful film critic. Answer in one word.")
    check("local route answers", headers.get("x-triage-backend") == "slm", dict(headers))
    check("the system prompt is part of the prompt", system.usage.input_tokens
          > plain.usage.input_tokens + 5, f"{plain.usage.input_tokens} -> {system.usage.input_tokens}")

    # Stop sequences end the answer, are not part of it, and are reported as the reason: by the
    # local engine, and by gateway B through A (B's `stop_sequence` read by A's Anthropic
    # backend), whole and streamed.
    # (40 tokens without an "e", a full stop, a space or a newline are unlikely, whatever the small
    # models write; the earliest one ends the answer and is the one reported.)
    stops = ["zz-never", "e", ".", " ", "\n"]
    for where, extra in (("local", LOCAL), ("remote", {})):
        m, headers = create_raw(c, "Describe the weather in three sentences.", max_tokens=40,
                                stop_sequences=stops, extra_headers=extra)
        text = m.content[0].text if m.content else ""
        check(f"a stop sequence ends the answer ({where}, {headers.get('x-triage-backend')})",
              not any(s in text for s in stops) and m.stop_reason == "stop_sequence"
              and m.stop_sequence in stops[1:] and m.usage.output_tokens < 40,
              f"{text!r} {m.stop_reason} {m.stop_sequence!r} {m.usage.output_tokens}")
        with c.messages.stream(model="auto", max_tokens=40, stop_sequences=stops,
                               extra_body={"temperature": 0}, extra_headers=extra,
                               messages=[{"role": "user",
                                          "content": "Describe the weather in three sentences."}]) as s:
            final = s.get_final_message()
        check(f"a streamed stop sequence is reported ({where})",
              final.stop_reason == "stop_sequence" and final.stop_sequence in stops[1:],
              f"{final.stop_reason} {final.stop_sequence!r}")
    plain, _ = create_raw(c, "Is 'I loved it' positive?", extra_headers=LOCAL, max_tokens=40)
    check("an answer no stop sequence ended names none", plain.stop_sequence is None
          and plain.stop_reason in ("end_turn", "max_tokens"), repr(plain))

    # Tools go to the route for tools (a remote): calls come back as tool_use blocks.
    m, headers = create_raw(c, "What's the weather in Paris?", max_tokens=200, tools=[WEATHER],
                            tool_choice={"type": "any"})
    uses = [b for b in m.content if b.type == "tool_use"]
    check("a tool call comes back as a tool_use block", m.stop_reason == "tool_use" and uses
          and uses[0].name == "get_weather" and isinstance(uses[0].input, dict)
          and "location" in uses[0].input and headers.get("x-triage-backend") == "claude",
          repr(m.content))
    with c.messages.stream(model="auto", max_tokens=200, tools=[WEATHER],
                           messages=[{"role": "user", "content": "Weather in Paris?"}]) as s:
        final = s.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    check("a streamed tool call arrives whole", final.stop_reason == "tool_use" and uses
          and uses[0].input.get("location", "").startswith("Paris"), repr(final.content))
    # The tool result goes back in the next turn (tool_use / tool_result blocks on the way in).
    follow = c.messages.create(model="auto", max_tokens=200, tools=[WEATHER], messages=[
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": uses[0].id,
                                           "name": "get_weather", "input": uses[0].input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                      "content": "18C, cloudy"}]},
    ])
    check("a tool_result turn reaches the upstream as tool_result", follow.stop_reason == "end_turn"
          and follow.content[0].text == f'results: {uses[0].id}="18C, cloudy"', repr(follow))

    # B answered the first message, the stream and the two remote stop-sequence requests.
    rows = b_rows_reach(start + 4)
    check("B's ledger has every request A sent it", rows == start + 4, f"{start} -> {rows}")

    # A prompt with an e-mail address never reaches B.
    before = rows
    _, headers = create_raw(c, "Write a reply to jane.doe@example.com about her order.")
    check("PII request stays local", headers.get("x-triage-backend") == "slm"
          and headers.get("x-triage-route") == "private", dict(headers))
    check("PII request never reached B", b_rows() == before)

    # Errors are Anthropic error objects the SDK raises as its own exception types.
    try:
        create_raw(c, "hi", model="no-such-model")
        check("unknown model is 404", False, "no exception")
    except anthropic.NotFoundError as e:
        check("unknown model is 404 NotFoundError", e.status_code == 404
              and e.body["type"] == "error" and e.body["error"]["type"] == "not_found_error",
              str(e.body))
    try:
        create_raw(client("sk-wrong"), "hi")
        check("bad key is 401", False, "no exception")
    except anthropic.AuthenticationError as e:
        check("bad key is 401 AuthenticationError", e.status_code == 401
              and e.body["error"]["type"] == "authentication_error", str(e.body))
    try:
        c.messages.create(model="auto", max_tokens=5, messages="not a list")
        check("malformed body is 400", False, "no exception")
    except anthropic.BadRequestError as e:
        check("malformed body is 400 BadRequestError", e.status_code == 400
              and e.body["error"]["type"] == "invalid_request_error"
              and "messages" in e.body["error"]["message"], str(e.body))

    # count_tokens answers in Anthropic's shape.
    counted = c.messages.count_tokens(model="auto", messages=[{"role": "user", "content": "Hello there"}])
    check("count_tokens counts", counted.input_tokens > 0, repr(counted))

    # Bob's budget refuses once spent: the SDK's RateLimitError.
    bob = client(BOB)
    outcomes = []
    for _ in range(6):
        try:
            _, headers = create_raw(bob, "Name a fruit.")
            outcomes.append(headers.get("x-triage-backend"))
        except anthropic.RateLimitError as e:
            outcomes.append(e.body["error"]["type"])
            break
    check("a spent budget is a RateLimitError", outcomes[0] == "llm"
          and outcomes[-1] == "rate_limit_error", str(outcomes))
    _, headers = create_raw(c, "Name a vegetable.")
    check("other tenants still reach the LLM", headers.get("x-triage-backend") == "llm", dict(headers))


def fallback_checks():
    m, headers = create_raw(client(), "Name an animal.")
    check("with B stopped the fallback answers", headers.get("x-triage-backend") == "slm"
          and m.content and m.content[0].text, dict(headers))


{"main": main_checks, "fallback": fallback_checks}[MODE]()
print("all checks passed")
