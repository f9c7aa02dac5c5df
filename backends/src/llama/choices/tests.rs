//! Unit tests of `choices` scoring, kept apart so the scoring code reads on its own: variant
//! spelling, the choice set and the lane-batched scoring loop on synthetic logits rows, and the
//! answer end of the bundled SmolLM2 model.

use super::*;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn variants_cover_case_and_leading_whitespace() {
    let v = variant_texts(&strings(&["positive", "Card_arrival"]));
    let of = |c: usize| -> Vec<&str> {
        v.iter()
            .filter(|(i, _)| *i == c)
            .map(|(_, t)| t.as_str())
            .collect()
    };
    assert_eq!(
        of(0),
        [
            "positive",
            " positive",
            "\npositive",
            "Positive",
            " Positive",
            "\nPositive"
        ]
    );
    // As written (already Capitalized), then lowercase.
    assert_eq!(
        of(1),
        [
            "Card_arrival",
            " Card_arrival",
            "\nCard_arrival",
            "card_arrival",
            " card_arrival",
            "\ncard_arrival"
        ]
    );
}

#[test]
fn a_case_form_that_is_another_choice_stays_with_that_choice() {
    let v = variant_texts(&strings(&["Yes", "yes", "NO"]));
    let of = |c: usize| -> Vec<&str> {
        v.iter()
            .filter(|(i, _)| *i == c)
            .map(|(_, t)| t.as_str())
            .collect()
    };
    assert_eq!(of(0), ["Yes", " Yes", "\nYes"]);
    assert_eq!(of(1), ["yes", " yes", "\nyes"]);
    assert_eq!(of(2).len(), 9, "NO, no, No: {:?}", of(2));
}

/// A toy tokenizer: one token per character (its code point).
fn chars(text: &str) -> Vec<LlamaToken> {
    text.chars().map(|c| LlamaToken(c as i32)).collect()
}

const END: LlamaToken = LlamaToken(0);

/// A logits row over a 128-token vocabulary favouring `token` by `strength`.
fn row_favouring(token: char, strength: f32) -> Vec<f32> {
    let mut row = vec![0.0f32; 128];
    row[token as usize] = strength;
    row
}

/// Drive a scoring to the end with one rows function, as the engine would (chunks of at most
/// `room` tokens).
fn score(set: ChoiceSet, room: usize, rows: impl Fn(LlamaToken) -> Vec<f32>) -> ChoiceScoring {
    score_in_lanes(set, room, 1, rows).0
}

/// As [`score`] with `lanes` lanes; also returns how many steps it took.
fn score_in_lanes(
    set: ChoiceSet,
    room: usize,
    lanes: usize,
    rows: impl Fn(LlamaToken) -> Vec<f32>,
) -> (ChoiceScoring, usize) {
    let mut scoring = ChoiceScoring::new(set, lanes);
    assert!(
        scoring.plan(room).is_empty(),
        "nothing before the prompt row"
    );
    scoring.read_prompt_row(&row_favouring('n', 5.0));
    let mut steps = 0;
    loop {
        let feeds = scoring.plan(room);
        if feeds.is_empty() {
            break;
        }
        assert!(feeds.iter().map(|f| f.tokens.len()).sum::<usize>() <= room);
        for feed in feeds {
            assert!(!feed.tokens.is_empty() && feed.lane < lanes);
            assert!(feed.offset + feed.tokens.len() <= 64);
            let decoded: Vec<Vec<f32>> = feed.tokens.iter().map(|&t| rows(t)).collect();
            scoring.read_lane_rows(feed.lane, decoded.iter().map(Vec::as_slice));
        }
        steps += 1;
        assert!(steps < 1000);
    }
    assert!(scoring.is_done());
    (scoring, steps)
}

#[test]
fn prefix_choice_is_scored_by_its_end_and_the_canonical_text_is_returned() {
    let set = ChoiceSet::new(strings(&["no", "no way"]), chars, &[END]);
    // After "o" the model wants a space (then "way"), after "y" it wants to stop.
    let scoring = score(set, 512, |fed| match char::from_u32(fed.0 as u32) {
        Some('n') => row_favouring('o', 6.0),
        Some('o') => row_favouring(' ', 6.0),
        Some(' ') => row_favouring('w', 6.0),
        Some('w') => row_favouring('a', 6.0),
        Some('a') => row_favouring('y', 6.0),
        _ => row_favouring('\0', 6.0),
    });
    let outcome = scoring.outcome(0.0, 0).unwrap();
    assert_eq!(outcome.text, "no way");
    assert_eq!(outcome.completion_tokens, 6);
    assert_eq!(outcome.token_logprobs.len(), 6);
    let probs = outcome.signals.choice_probs.clone().unwrap();
    assert_eq!(probs[0].0, "no");
    assert_eq!(probs[1].0, "no way");
    assert!((probs.iter().map(|(_, p)| p).sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(probs[1].1 > 0.9);
    assert_eq!(outcome.signals.chosen, Some(1));
}

#[test]
fn chunked_feeding_gives_the_same_scores_as_whole_variants() {
    let rows =
        |fed: LlamaToken| row_favouring(char::from_u32(fed.0 as u32 + 1).unwrap_or('a'), 2.0);
    let whole = score(
        ChoiceSet::new(strings(&["abc", "abd", "b"]), chars, &[END]),
        512,
        rows,
    )
    .outcome(0.0, 0)
    .unwrap();
    let chunked = score(
        ChoiceSet::new(strings(&["abc", "abd", "b"]), chars, &[END]),
        1,
        rows,
    )
    .outcome(0.0, 0)
    .unwrap();
    assert_eq!(whole, chunked);
}

#[test]
fn lanes_give_the_same_scores_in_fewer_steps() {
    let choices = strings(&["alpha", "beta", "gamma", "delta", "b"]);
    let rows =
        |fed: LlamaToken| row_favouring(char::from_u32(fed.0 as u32 + 1).unwrap_or('a'), 2.0);
    let (one, one_steps) =
        score_in_lanes(ChoiceSet::new(choices.clone(), chars, &[END]), 512, 1, rows);
    let (many, many_steps) =
        score_in_lanes(ChoiceSet::new(choices.clone(), chars, &[END]), 512, 8, rows);
    // Small room: lanes share it, variants are fed in chunks across steps.
    let (tight, _) = score_in_lanes(ChoiceSet::new(choices, chars, &[END]), 3, 8, rows);
    assert_eq!(one.outcome(0.0, 0), many.outcome(0.0, 0));
    assert_eq!(one.outcome(0.0, 0), tight.outcome(0.0, 0));
    assert!(
        many_steps * 4 <= one_steps,
        "{many_steps} steps in 8 lanes, {one_steps} in one"
    );
}

#[test]
fn the_best_variant_gives_tokens_and_usage_and_the_feed_length_is_known() {
    let set = ChoiceSet::new(strings(&["ab"]), chars, &[END, LlamaToken(1)]);
    // "\nab" + two end tokens: 5 tokens, 4 fed.
    assert_eq!(set.longest_feed(), 4);
    assert_eq!(set.longest_answer(), 3);
    // The prompt row favours "n", not a space or newline: the bare variant wins.
    let scoring = score(set, 512, |_| vec![0.0; 128]);
    let outcome = scoring.outcome(1.0, 3).unwrap();
    assert_eq!(outcome.text, "ab");
    assert_eq!(outcome.completion_tokens, 2);
    assert_eq!(outcome.signals.choice_probs, Some(vec![("ab".into(), 1.0)]));
}

#[test]
fn variants_that_tokenize_alike_are_scored_once() {
    // A tokenizer that drops whitespace makes " x" and "\nx" the same tokens as "x".
    let set = ChoiceSet::new(strings(&["x"]), |t: &str| chars(t.trim_start()), &[END]);
    assert_eq!(set.variants.len(), 2, "x and X");
}

#[test]
fn smollm2_answers_end_with_its_turn_marker_not_its_gguf_eot() {
    // SmolLM2's GGUF names `<|endoftext|>` as EOT; its chat template closes an answer with
    // `<|im_end|>`, which is what the model writes there.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let model = super::super::load_model(&path).unwrap();
    let format = PromptFormat::for_model(&model, None, crate::CompletionMode::Auto);
    let im_end = model.vocab().tokenize(b"<|im_end|>", false, true);
    assert_eq!(im_end.len(), 1);
    assert_ne!(model.vocab().eot(), im_end[0]);
    assert_eq!(
        AnswerEnd::for_model(&model, &format),
        AnswerEnd::Tokens(im_end)
    );
    // Completion text ends an answer with a blank line.
    let blank_line = model.vocab().tokenize(b"\n\n", false, false);
    assert_eq!(AnswerEnd::Completion.tokens(&model), Some(blank_line));
}

#[test]
fn outcome_waits_for_every_variant() {
    let set = ChoiceSet::new(strings(&["ab", "cd"]), chars, &[END]);
    let mut scoring = ChoiceScoring::new(set, 1);
    assert_eq!(scoring.outcome(0.0, 0), None);
    scoring.read_prompt_row(&[0.0; 128]);
    let feeds = scoring.plan(512);
    assert_eq!(feeds.len(), 1, "one lane");
    assert_eq!(feeds[0].tokens.len(), 2, "\"ab\" then end: two tokens fed");
    let rows = [vec![0.0f32; 128], vec![0.0f32; 128]];
    assert!(scoring.read_lane_rows(0, rows.iter().map(Vec::as_slice)));
    assert_eq!(scoring.outcome(0.0, 0), None);
}
