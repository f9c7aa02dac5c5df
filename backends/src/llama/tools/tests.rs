use serde_json::json;

use super::*;

fn request(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap()
}

fn weather() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
        "required": ["city"]}}})
}

#[test]
fn tool_choice_forms_are_read_and_bad_ones_named() {
    let base = json!({"messages": [{"role": "user", "content": "hi"}], "tools": [weather()]});
    let with = |choice: Value| {
        let mut b = base.clone();
        b["tool_choice"] = choice;
        ToolSet::of(&request(b))
    };
    assert_eq!(
        ToolSet::of(&request(base.clone())).unwrap().unwrap().choice,
        ToolChoice::Auto
    );
    assert_eq!(with(json!("none")).unwrap(), None);
    assert_eq!(
        with(json!("required")).unwrap().unwrap().choice,
        ToolChoice::Required
    );
    let named = with(json!({"type": "function", "function": {"name": "get_weather"}}));
    assert_eq!(
        named.unwrap().unwrap().choice,
        ToolChoice::Named("get_weather".into())
    );
    for (choice, says) in [
        (json!("sometimes"), "`tool_choice` must be"),
        (
            json!({"type": "function", "function": {"name": "nope"}}),
            "not among `tools`",
        ),
        (json!({"type": "function"}), "`function.name` is missing"),
    ] {
        let e = with(choice).unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
    let e = ToolSet::of(&request(json!({"messages": [], "tool_choice": "required"})))
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs `tools`"), "{e}");
    let e = ToolSet::of(&request(
        json!({"messages": [], "tools": [{"type": "web_search"}]}),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("`tools[0]`") && e.contains("web_search"), "{e}");
}

#[test]
fn the_conversation_carries_the_tool_prompt_and_earlier_calls() {
    let r = request(json!({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"}],
        "tools": [weather()], "tool_choice": "required"}));
    let tools = ToolSet::of(&r).unwrap().unwrap();
    let messages = conversation(&r, Some(&tools));
    assert_eq!(messages.len(), 4);
    let system = messages[0].text();
    assert!(system.starts_with("Be brief.\n\n"), "{system}");
    assert!(system.contains("- get_weather: Weather now."), "{system}");
    assert!(
        system.contains("You must call one of the tools."),
        "{system}"
    );
    assert_eq!(
        messages[2].text(),
        r#"{"name": "get_weather", "arguments": {"city":"Paris"}}"#
    );
    assert_eq!(messages[3].role, Role::User);
    assert_eq!(
        messages[3].text(),
        "Tool `get_weather` returned: 18 C, sunny"
    );
    // Without tools nor tool turns the messages are the request's.
    let plain = ChatRequest::user("m", "hi");
    assert_eq!(conversation(&plain, None), plain.messages);
}

#[test]
fn grammars_compile_for_every_choice() {
    let two = request(json!({"messages": [], "tools": [weather(),
        {"type": "function", "function": {"name": "get_time"}}]}));
    let mut tools = ToolSet::of(&two).unwrap().unwrap();
    let auto = grammar::grammar(&tools).unwrap();
    assert!(
        auto.starts_with("root ::= tool-call | free-text\n"),
        "{auto}"
    );
    assert_eq!(auto.matches("root ::=").count(), 1, "{auto}");
    tools.choice = ToolChoice::Named("get_time".into());
    let named = grammar::grammar(&tools).unwrap();
    assert!(
        named.contains("get_time") && !named.contains("get_weather"),
        "{named}"
    );
}
