#!/usr/bin/env python3
"""Writes items.jsonl: the adversarial PII set written for triage (see README.md).

Run from this directory: python3 make_items.py > items.jsonl
"""
import json

U = lambda text: {"role": "user", "content": text}
A = lambda text: {"role": "assistant", "content": text}


def req(*messages, **extra):
    r = {"model": "auto", "messages": list(messages)}
    r.update(extra)
    return r


def fw(s):
    """Fullwidth forms of ASCII digits, letters and punctuation."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c) for c in s)


def digits(s, zero):
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in s)


CARD, CARD2, AMEX = "4111 1111 1111 1111", "5555 5555 5555 4444", "3782 822463 10005"
SSN, EMAIL, PHONE_US, PHONE_UK = "123-45-6789", "ann.lee@example.com", "+1 (415) 555-0132", "+44 20 7946 0958"
IBAN, IBAN_DE = "GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00"

items = []


def pos(id, note, request, *pii, non_text=False):
    items.append({"id": id, "note": note, "request": request,
                  "pii": [{"type": t, "value": v} for t, v in pii], "non_text": non_text})


def neg(id, note, request):
    items.append({"id": id, "note": note, "request": request, "pii": [], "non_text": False})


# --- look-alike characters -------------------------------------------------------------------
pos("fullwidth-card", "fullwidth digits and ideographic spaces",
    req(U("カード番号は" + fw(CARD) + "です")), ("card", fw(CARD)))
pos("fullwidth-ssn", "fullwidth digits and fullwidth hyphen-minus",
    req(U("SSN: " + fw(SSN))), ("ssn", fw(SSN)))
pos("fullwidth-phone", "fullwidth plus, parentheses and digits",
    req(U("電話 " + fw("+1 (415) 555-0132"))), ("phone", fw(PHONE_US)))
pos("fullwidth-at", "fullwidth commercial at U+FF20",
    req(U("write to ann.lee＠example.com")), ("email", "ann.lee＠example.com"))
pos("small-at", "small commercial at U+FE6B",
    req(U("write to ann.lee\ufe6bexample.com")), ("email", "ann.lee\ufe6bexample.com"))
pos("fullwidth-email", "the whole address in fullwidth forms",
    req(U("メール: " + fw(EMAIL))), ("email", fw(EMAIL)))
pos("fullwidth-dot-email", "fullwidth full stop in the domain",
    req(U("mail ann.lee@example．com today")), ("email", "ann.lee@example．com"))
pos("fullwidth-iban", "fullwidth letters and digits",
    req(U("IBAN " + fw(IBAN))), ("iban", fw(IBAN)))
pos("fullwidth-ipv4", "fullwidth full stops",
    req(U("server at 192．168．10．7 is down")), ("ipv4", "192．168．10．7"))
pos("fullwidth-ipv6", "fullwidth colons",
    req(U("host 2001：db8：：8a2e：370：7334 please")), ("ipv6", "2001：db8：：8a2e：370：7334"))
pos("math-bold-card", "mathematical bold digits",
    req(U("card " + digits(CARD, 0x1D7CE))), ("card", digits(CARD, 0x1D7CE)))
pos("arabic-indic-phone", "Arabic-Indic digits",
    req(U("رقمي " + digits(PHONE_UK, 0x0660))), ("phone", digits(PHONE_UK, 0x0660)))
pos("devanagari-card", "Devanagari digits",
    req(U("कार्ड " + digits(CARD2, 0x0966))), ("card", digits(CARD2, 0x0966)))
pos("thai-ssn", "Thai digits",
    req(U("หมายเลข " + digits(SSN, 0x0E50))), ("ssn", digits(SSN, 0x0E50)))
pos("keycap-ssn", "keycap digits (digit, VS16, combining enclosing keycap)",
    req(U("my ssn " + "".join(c + "\ufe0f\u20e3" if c.isdigit() else c for c in SSN))),
    ("ssn", "keycaps"))
pos("underlined-card", "combining low line after every digit",
    req(U("card " + "".join(c + "\u0332" if c.isdigit() else c for c in CARD))), ("card", "underlined"))
# --- invisible characters and Unicode spaces and dashes --------------------------------------
pos("zwsp-before-at", "zero-width space before @",
    req(U("mail ann.lee\u200b@example.com")), ("email", "ann.lee\u200b@example.com"))
pos("zwj-zwnj-email", "zero-width joiner and non-joiner inside the address",
    req(U("a\u200dnn.lee@exa\u200cmple.com")), ("email", "a\u200dnn.lee@exa\u200cmple.com"))
pos("rtl-override-email", "right-to-left override around the address",
    req(U("contact \u202eann.lee@example.com\u202c now")), ("email", EMAIL))
pos("nbsp-ssn", "no-break spaces between the groups",
    req(U("SSN 123\u00a045\u00a06789")), ("ssn", "123\u00a045\u00a06789"))
pos("narrow-nbsp-ssn", "narrow no-break spaces U+202F",
    req(U("SSN 123\u202f45\u202f6789")), ("ssn", "123\u202f45\u202f6789"))
pos("nb-hyphen-ssn", "non-breaking hyphens U+2011",
    req(U("SSN 123\u201145\u20116789")), ("ssn", "123\u201145\u20116789"))
pos("en-dash-ssn", "en dashes",
    req(U("SSN 123\u201345\u20136789")), ("ssn", "123\u201345\u20136789"))
pos("minus-phone", "minus signs U+2212",
    req(U("call 415\u2212555\u22120132")), ("phone", "415\u2212555\u22120132"))
pos("em-space-card", "em spaces between the groups",
    req(U("card " + CARD.replace(" ", "\u2003"))), ("card", CARD.replace(" ", "\u2003")))
pos("soft-hyphen-card", "a soft hyphen after every digit",
    req(U("card " + "\u00ad".join(CARD.replace(" ", "")))), ("card", "soft hyphens"))
pos("word-joiner-card", "word joiners instead of spaces",
    req(U("card " + CARD.replace(" ", "\u2060"))), ("card", CARD.replace(" ", "\u2060")))
pos("bom-inside-iban", "BOM U+FEFF inside the IBAN",
    req(U("IBAN GB82\ufeffWEST12345698765432")), ("iban", "GB82\ufeffWEST12345698765432"))
pos("ideographic-space-amex", "ideographic spaces in an Amex number",
    req(U("amex " + AMEX.replace(" ", "\u3000"))), ("card", AMEX.replace(" ", "\u3000")))
# --- across message and part boundaries -------------------------------------------------------
pos("card-over-4-messages", "a card number sent four digits at a time",
    req(U("4111"), U("1111"), U("1111"), U("1111")), ("card", CARD))
pos("card-over-4-messages-spaced", "four messages with stray spaces",
    req(U("my card: 5555 "), A("ok?"), U(" 5555"), U("5555 "), U("4444")), ("card", CARD2))
pos("ssn-over-3-messages", "an SSN in three messages",
    req(U("123-"), U("45-"), U("6789")), ("ssn", SSN))
pos("email-over-2-messages", "the local part and the domain in two messages",
    req(U("my address is ann.lee"), U("@example.com")), ("email", EMAIL))
pos("iban-over-2-messages", "an IBAN cut in two",
    req(U("IBAN GB82WEST"), U("12345698765432")), ("iban", "GB82WEST12345698765432"))
pos("phone-over-2-messages", "a phone number cut after the area code",
    req(U("ring +44 20"), U("7946 0958")), ("phone", PHONE_UK))
pos("card-over-text-parts", "a card number in two text parts of one message",
    req({"role": "user", "content": [{"type": "text", "text": "4111 1111"},
                                      {"type": "text", "text": "1111 1111"}]}), ("card", CARD))
# --- fields besides message text -------------------------------------------------------------
CALL = lambda args: {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": args}}]}
pos("tool-call-args-ssn", "only in an assistant tool call's arguments",
    req(U("look me up"), CALL(json.dumps({"ssn": SSN})),
        {"role": "tool", "tool_call_id": "call_1", "content": "found"}), ("ssn", SSN))
pos("tool-call-args-escaped-email", "arguments JSON with the @ escaped as \\u0040",
    req(U("mail it"), CALL('{"to": "ann.lee\\u0040example.com"}')), ("email", EMAIL))
pos("tool-call-args-number-card", "a card number as a JSON number in the arguments",
    req(U("pay"), CALL('{"card": 4111111111111111, "amount": 12}')), ("card", "4111111111111111"))
pos("tool-call-name-email", "a tool call whose function name is an address",
    req(U("go"), {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "ann.lee@example.com", "arguments": "{}"}}]}),
    ("email", EMAIL))
pos("tool-result-phone", "only in a tool result",
    req(U("who is on call?"), CALL("{}"), {"role": "tool", "tool_call_id": "call_1",
                                          "content": [{"type": "text", "text": "on call: " + PHONE_US}]}),
    ("phone", PHONE_US))
pos("tool-description-email", "only in a tool definition's description",
    req(U("hi"), tools=[{"type": "function", "function": {
        "name": "notify", "description": "Notifies " + EMAIL, "parameters": {"type": "object"}}}]),
    ("email", EMAIL))
pos("tool-schema-iban", "only in a tool parameter schema's default",
    req(U("hi"), tools=[{"type": "function", "function": {"name": "pay", "parameters": {
        "type": "object", "properties": {"to": {"type": "string", "default": IBAN_DE}}}}}]),
    ("iban", IBAN_DE))
pos("message-name-email", "only in a message's name",
    req({"role": "user", "content": "hello", "name": EMAIL}), ("email", EMAIL))
pos("unmodelled-user-email", "only in the top-level user field",
    req(U("hello"), user=EMAIL), ("email", EMAIL))
pos("unmodelled-nested-ssn", "only in an unmodelled nested field (prediction)",
    req(U("fix this"), prediction={"type": "content", "content": "SSN " + SSN}), ("ssn", SSN))
pos("unmodelled-key-email", "an address as an object key in an unmodelled field",
    req(U("hello"), x_notes={EMAIL: "vip"}), ("email", EMAIL))
pos("metadata-phone", "only in metadata",
    req(U("hello"), metadata={"contact": PHONE_UK}), ("phone", PHONE_UK))
pos("response-format-card", "only in a response_format schema description",
    req(U("answer"), response_format={"type": "json_schema", "json_schema": {
        "name": "out", "description": "billed to " + CARD, "schema": {"type": "object"}}}),
    ("card", CARD))
pos("stop-sequence-email", "only in a stop sequence",
    req(U("hello"), stop=[EMAIL]), ("email", EMAIL))
pos("fullwidth-in-tool-args", "fullwidth digits inside tool-call arguments",
    req(U("pay"), CALL(json.dumps({"ssn": fw(SSN)}, ensure_ascii=False))), ("ssn", fw(SSN)))
# --- content the detector cannot read ----------------------------------------------------------
pos("image-data-url", "PII only inside an image (a data URL)",
    req({"role": "user", "content": [{"type": "text", "text": "read this card"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}}]}),
    non_text=True)
pos("image-https-url", "an image by URL",
    req({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/scan.png"}}]}),
    non_text=True)
pos("input-audio", "spoken PII in an audio part",
    req({"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}}]}),
    non_text=True)
pos("file-part", "a file part",
    req({"role": "user", "content": [{"type": "file", "file": {"filename": "id.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}}]}),
    non_text=True)
pos("data-url-in-unmodelled-field", "a data URL in an unmodelled field",
    req(U("see attachment"), attachment="data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ"), non_text=True)

# --- negatives: look like PII, are not ---------------------------------------------------------
neg("date-time", "dates and times", req(U("The meeting is on 2024-03-15 at 10:30, room 4B.")))
neg("fullwidth-date", "a fullwidth date", req(U("会議は２０２４年３月１５日の１０：３０からです。")))
neg("fullwidth-page", "fullwidth chapter and page numbers", req(U("第３章の５ページを見てください。")))
neg("order-number", "a short order number", req(U("Order #48213 shipped in 3 boxes.")))
neg("version", "a dotted version", req(U("Upgrade to 10.0.19045 or v1.2.3.4.5 first.")))
neg("prices", "prices with separators", req(U("It costs $1,299.99 here and €2.499,00 there.")))
neg("score-line", "match scores", req(U("Scores: 3-1, 2-2 and 1-0 this week.")))
neg("temperatures", "minus signs in temperatures", req(U("Tonight −5 °C, tomorrow −10 °C.")))
neg("zero-width-prose", "zero-width characters in prose", req(U("hello\u200bworld, this\u00adis fine\ufeff")))
neg("mentions", "an @mention and a hashtag", req(U("Ping @ann about #release-42.")))
neg("git-hash", "a commit hash", req(U("Fixed in commit a3f5c9e1b2d4 on main.")))
neg("uuid", "a UUID", req(U("Request id 550e8400-e29b-41d4-a716-446655440000 failed.")))
neg("line-range", "a line range", req(U("See lines 100-200 of main.rs.")))
neg("coordinates", "coordinates", req(U("Paris is at 48.8566, 2.3522.")))
neg("years-list", "four years in a row", req(U("The games were in 1999 2000 2001 2002.")))
neg("arithmetic-chat", "small numbers in consecutive messages",
    req(U("How many legs does a spider have?"), A("8"), U("And an ant?"), A("6")))
neg("adjacent-numbers", "numbers at the end and start of consecutive messages",
    req(U("Room 12"), U("34 people attended, 5 left early.")))
neg("sum-chat", "a sum over messages",
    req(U("add 17 and 25"), A("42"), U("now 2023 minus 1999"), A("24")))
neg("tool-args-plain", "tool-call arguments without PII",
    req(U("weather?"), CALL('{"city": "Paris", "days": 5}'),
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 18, \"rain_mm\": 0.4}"}))
neg("tools-plain", "tool definitions without PII",
    req(U("hi"), tools=[{"type": "function", "function": {"name": "get_weather",
        "description": "Weather for a city over 1-14 days.",
        "parameters": {"type": "object", "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 14}}}}}],
        tool_choice="auto"))
neg("unmodelled-plain", "unmodelled fields without PII",
    req(U("hi"), user="tenant-7", logit_bias={"50256": -100}, parallel_tool_calls=True, seed=1234))
neg("isbn", "an ISBN", req(U("ISBN 978-3-16-148410-0 is on the shelf.")))
neg("chemistry", "formulas", req(U("H2O and CO2 at 25 °C and 101.3 kPa.")))
neg("quantities-fullwidth", "fullwidth quantities", req(U("在庫：１２個、価格：３４５０円")))
neg("arabic-year", "Arabic-Indic year and count", req(U("في عام ٢٠٢٤ كان هناك ١٢ شهرا")))
neg("keycap-emoji", "keycap emoji in prose", req(U("Top 3\ufe0f\u20e3 picks, rated 5\ufe0f\u20e3 stars")))
neg("multi-part-text", "text parts without PII",
    req({"role": "user", "content": [{"type": "text", "text": "Chapter 12"}, {"type": "text", "text": "Section 3"}]}))
neg("unix-time", "a Unix timestamp in a tool result",
    req(U("when?"), CALL("{}"), {"role": "tool", "tool_call_id": "call_1", "content": "{\"ts\": 1700000000}"}))

for item in items:
    print(json.dumps(item, ensure_ascii=False))
