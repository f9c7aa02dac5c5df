//! The local engine: llama.cpp in-process.
//!
//! `LlamaContext` is not `Send`, so one dedicated OS thread owns it (as mistral.rs does) and runs
//! **continuous batching**: N slots share one context with distinct sequence ids; every step
//! decodes one `llama_batch` holding the next token of every generating sequence plus prompt
//! chunks of newly admitted ones; a finished or cancelled sequence frees its KV cells at once.
//!
//! Requests wait for a slot in a bounded admission queue ([`admission`]: every waiting request
//! counts; a full queue is [`BackendError::Overloaded`] at once — the router decides whether to
//! answer 429 or spill to a remote). Prompt formatting,
//! tokenization, the length check and grammar compilation happen on the caller's side, so bad
//! requests fail before they queue. Tokens flow back over an unbounded channel (a request's
//! output is bounded by its `max_tokens`), each with its own `Instant` and log-probability;
//! dropping the stream closes that channel and the engine cancels the sequence (or drops the
//! waiting request) on its next step, releasing its slot and gauges at once.
//!
//! Requests with `tools` get the generic tool prompt, a grammar that keeps a call valid, and
//! their call streamed as tool-call deltas ([`tools`]). Every token carries its log-probability
//! entry (with `top_logprobs` alternatives when asked for), released with the text it belongs
//! to.
//!
//! `choices` requests are answered by scoring every choice as a continuation of the prompt
//! ([`choices`]), not by generating under a grammar; every answer ends with its
//! [`crate::Signals`] (choice probabilities, or log-probability statistics of the freely chosen
//! tokens) before `Done`.

mod admission;
mod choices;
pub mod completion;
mod engine;
pub mod grammar;
mod info;
mod logits;
mod prefix;
pub mod prompt;
mod sampling;
mod signals;
mod special;
pub mod text;
mod token_report;
pub mod tools;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use tokio::sync::mpsc::unbounded_channel;
use tokio_stream::wrappers::UnboundedReceiverStream;

pub use info::{read_model_info, ModelInfo};
pub use llama_cpp_2::token::LlamaToken;
pub use prompt::PromptFormat;
pub use sampling::SamplingParams;
pub use tools::{Tool, ToolChoice, ToolSet};

/// Re-exported here, where the engine that loads it lives; defined outside the feature gate.
pub use crate::LlamaEngineConfig;

use crate::types::ChatRequest;
use crate::{collect_stream, Backend, BackendError, ChatResponse, EventStream, Result};
use admission::{Admission, Refused, Waiting};
use choices::{AnswerEnd, ChoiceScoring, ChoiceSet};
use special::ControlTokens;

/// Live counters of the engine: queue and slots feed the gateway's `/metrics` and spill rule; the
/// decode and host times feed `triage hw`'s "engine host %".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineStats {
    /// Requests admitted to the queue but not yet to a slot.
    pub queue_depth: usize,
    /// Slots currently holding a sequence.
    pub busy_slots: usize,
    /// Slots configured (`LlamaEngineConfig::slots`).
    pub slots: usize,
    /// Decode steps and where the engine thread's time went so far.
    pub time: crate::EngineTime,
}

#[derive(Debug, Default)]
struct StatCounters {
    queue_depth: AtomicUsize,
    busy_slots: AtomicUsize,
    decode_steps: AtomicU64,
    decode_nanos: AtomicU64,
    host_nanos: AtomicU64,
}

/// One admitted request on its way to the engine thread.
struct Job {
    tokens: Vec<LlamaToken>,
    params: SamplingParams,
    work: Work,
    events: tokio::sync::mpsc::UnboundedSender<Result<crate::ChatEvent>>,
}

impl Waiting for Job {
    fn is_cancelled(&self) -> bool {
        self.events.is_closed()
    }
}

/// What the engine does after the prompt.
enum Work {
    /// Sample tokens: the sampler chain, with the output grammar (JSON schema, or `choices` on a
    /// model that cannot score) applied before it, kept apart so forced tokens can be told.
    Generate {
        sampler: LlamaSampler,
        grammar: Option<LlamaSampler>,
    },
    /// Score every way of writing every choice and answer with the most probable choice.
    Score(ChoiceScoring),
}

/// A loaded local model and its engine thread. Cheap to clone; the thread stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct LlamaEngine {
    shared: Arc<Shared>,
}

struct Shared {
    model: Arc<LlamaModel>,
    admission: Arc<Admission<Job>>,
    counters: Arc<StatCounters>,
    info: ModelInfo,
    format: PromptFormat,
    /// How a scored `choices` answer ends for this model and format.
    answer_end: AnswerEnd,
    /// The model's control tokens, which a message's text must never become.
    control: ControlTokens,
    config: LlamaEngineConfig,
}

impl Drop for Shared {
    /// The last engine handle is gone: the thread finishes what is queued and running, then stops.
    fn drop(&mut self) {
        self.admission.close();
    }
}

pub(crate) fn llama_backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs a lot at load time; route it to `tracing` (debug level).
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| BackendError::Engine(format!("initialising llama.cpp: {e}")))
}

/// Load a GGUF model file (memory-mapped, no context): for metadata and tokenization.
pub fn load_model(path: &std::path::Path) -> Result<LlamaModel> {
    let backend = llama_backend()?;
    let meta = std::fs::metadata(path).map_err(|e| BackendError::ModelLoad {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(BackendError::ModelLoad {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    check_gguf_magic(path)?;
    LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).map_err(|e| {
        BackendError::ModelLoad {
            path: path.to_path_buf(),
            reason: format!("llama.cpp could not load it ({e}); is it a complete GGUF file?"),
        }
    })
}

fn check_gguf_magic(path: &std::path::Path) -> Result<()> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| BackendError::ModelLoad {
            path: path.to_path_buf(),
            reason: format!("cannot read header: {e}"),
        });
    read?;
    if &magic != b"GGUF" {
        return Err(BackendError::ModelLoad {
            path: path.to_path_buf(),
            reason: format!("not a GGUF file (magic bytes {magic:02x?}, expected \"GGUF\")"),
        });
    }
    Ok(())
}

impl LlamaEngine {
    /// Load the model, create the context and start the engine thread. Blocking.
    pub fn load(config: LlamaEngineConfig) -> Result<LlamaEngine> {
        if config.slots == 0 || config.context_per_slot == 0 || config.batch_size == 0 {
            return Err(BackendError::Config(
                "slots, context_per_slot and batch_size must be positive".into(),
            ));
        }
        let model = Arc::new(load_model(&config.model_path)?);
        let info = info::model_info(&config.model_path, &model);
        let format = PromptFormat::for_model(
            &model,
            config.chat_template.as_deref(),
            config.completion_mode,
        );
        let answer_end = AnswerEnd::for_model(&model, &format);
        let control = ControlTokens::of_model(&model);
        let counters = Arc::new(StatCounters::default());
        let admission = Arc::new(Admission::new(config.queue_capacity, counters.clone()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let thread_model = Arc::clone(&model);
        let thread_counters = Arc::clone(&counters);
        let thread_config = config.clone();
        let jobs = Arc::clone(&admission);
        std::thread::Builder::new()
            .name("llama-engine".into())
            .spawn(move || {
                engine::run(
                    thread_model,
                    thread_config,
                    &jobs,
                    thread_counters,
                    ready_tx,
                )
            })
            .map_err(|e| BackendError::Engine(format!("spawning engine thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| BackendError::Engine("engine thread exited during start-up".into()))??;
        Ok(LlamaEngine {
            shared: Arc::new(Shared {
                model,
                admission,
                counters,
                info,
                answer_end,
                control,
                format,
                config,
            }),
        })
    }

    /// The loaded model's metadata (architecture, size, quantization, …).
    pub fn model_info(&self) -> &ModelInfo {
        &self.shared.info
    }

    /// How requests are rendered into prompt text for this model.
    pub fn prompt_format(&self) -> &PromptFormat {
        &self.shared.format
    }

    /// The configuration the engine was started with.
    pub fn config(&self) -> &LlamaEngineConfig {
        &self.shared.config
    }

    /// A snapshot of the live counters (queue, busy slots, decode time).
    pub fn stats(&self) -> EngineStats {
        let c = &self.shared.counters;
        EngineStats {
            queue_depth: c.queue_depth.load(Ordering::Relaxed),
            busy_slots: c.busy_slots.load(Ordering::Relaxed),
            slots: self.shared.config.slots,
            time: crate::EngineTime {
                decode_steps: c.decode_steps.load(Ordering::Relaxed),
                decode_secs: c.decode_nanos.load(Ordering::Relaxed) as f64 * 1e-9,
                host_secs: c.host_nanos.load(Ordering::Relaxed) as f64 * 1e-9,
            },
        }
    }

    /// The request's prompt exactly as the engine will see it.
    pub fn render_prompt(&self, request: &ChatRequest) -> Result<String> {
        let messages = self.conversation(request)?;
        self.shared.format.render(&self.shared.model, &messages)
    }

    /// The request's tools that may be called, checked against this model and the request's
    /// other output constraints (see [`tools`]).
    pub fn tool_set(&self, request: &ChatRequest) -> Result<Option<ToolSet>> {
        let Some(tools) = ToolSet::of(request)? else {
            return Ok(None);
        };
        if matches!(self.shared.format, PromptFormat::Completion) {
            return Err(BackendError::ToolsUnsupported(format!(
                "`{}` is prompted with completion text (a base model), which has no turns for                  tools",
                self.model_name()
            )));
        }
        if request.choices.is_some() || request.response_format.is_some() {
            return Err(BackendError::InvalidRequest(
                "the local engine cannot combine `tools` (unless `tool_choice` is `none`) with                  `choices` or `response_format`"
                    .into(),
            ));
        }
        Ok(Some(tools))
    }

    /// The messages the prompt is rendered from: the request's, with the tool prompt and tool
    /// turns written out ([`tools::conversation`]).
    fn conversation(&self, request: &ChatRequest) -> Result<Vec<crate::ChatMessage>> {
        if request.messages.is_empty() {
            return Err(BackendError::InvalidRequest(
                "`messages` must contain at least one message".into(),
            ));
        }
        let tools = self.tool_set(request)?;
        Ok(tools::conversation(request, tools.as_ref()))
    }

    /// Tokenize trusted text with special-token parsing (a control token's text becomes that
    /// token) and BOS per the model: how a prompt without control-token text in its messages is
    /// tokenized. Requests go through [`Self::prompt_tokens`].
    pub fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        self.shared
            .model
            .vocab()
            .tokenize(text.as_bytes(), true, true)
    }

    /// The request's prompt as the engine sees it, tokenized so that only the prompt format's own
    /// turn markers are control tokens: a message that writes `<|im_end|>` gets the tokens of
    /// that text, never the end-of-turn token (see `special.rs`). A prompt whose messages hold no
    /// control-token text is tokenized exactly as [`Self::tokenize`] would.
    pub fn prompt_tokens(&self, request: &ChatRequest) -> Result<Vec<LlamaToken>> {
        let messages = self.conversation(request)?;
        let shared = &self.shared;
        let prompt = shared.format.render(&shared.model, &messages)?;
        let vocab = shared.model.vocab();
        if matches!(shared.format, PromptFormat::Completion) {
            // Completion text has no turn markers: none of it is a control token.
            return Ok(vocab.tokenize(prompt.as_bytes(), true, false));
        }
        if !messages.iter().any(|m| shared.control.occur_in(&m.text())) {
            return Ok(self.tokenize(&prompt));
        }
        let pieces = shared
            .format
            .render_pieces(&shared.model, &messages, &prompt)?
            .ok_or_else(|| {
                BackendError::InvalidRequest(
                    "a message holds the text of one of the model's control tokens, and this \
                     model's chat template rewrites message text, so it cannot be kept as plain \
                     text"
                        .into(),
                )
            })?;
        Ok(shared.control.tokenize(&shared.model, &pieces))
    }

    /// Tokens in the request's rendered prompt.
    pub fn count_tokens(&self, request: &ChatRequest) -> Result<usize> {
        Ok(self.prompt_tokens(request)?.len())
    }

    /// Validate a request and turn it into sampling settings.
    pub fn sampling_params(
        &self,
        request: &ChatRequest,
        prompt_tokens: usize,
    ) -> Result<SamplingParams> {
        if request.n.is_some_and(|n| n != 1) {
            return Err(BackendError::InvalidRequest(
                "the local engine answers one choice per request (`n` must be 1)".into(),
            ));
        }
        let room = (self.shared.config.context_per_slot as usize).saturating_sub(prompt_tokens);
        let max_tokens = match request.max_output_tokens() {
            Some(0) => {
                return Err(BackendError::InvalidRequest(
                    "`max_tokens` must be at least 1".into(),
                ))
            }
            Some(n) => n.min(room as u32),
            None => room as u32,
        };
        let temperature = request.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(BackendError::InvalidRequest(format!(
                "`temperature` must be between 0 and 2, got {temperature}"
            )));
        }
        let top_p = request.top_p.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&top_p) || top_p == 0.0 {
            return Err(BackendError::InvalidRequest(format!(
                "`top_p` must be in (0, 1], got {top_p}"
            )));
        }
        let min_p = request.min_p.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&min_p) {
            return Err(BackendError::InvalidRequest(format!(
                "`min_p` must be in [0, 1], got {min_p}"
            )));
        }
        let grammar = match self.tool_set(request)? {
            Some(tools) => Some(tools::grammar::grammar(&tools)?),
            None => grammar::grammar_for(request, self.answer_end().is_none())?,
        };
        let format = &self.shared.format;
        let stop = request.stop_sequences();
        // A grammar ends its output itself; a blank line may be whitespace inside its JSON.
        let format_stops = match (format, &grammar) {
            (PromptFormat::Completion, Some(_)) => &[][..],
            _ => format.turn_stops(),
        };
        let turn_stops = format_stops
            .iter()
            .filter(|marker| !stop.iter().any(|s| s == *marker))
            .map(|marker| (*marker).to_string())
            .collect();
        Ok(SamplingParams {
            max_tokens,
            temperature,
            top_p,
            top_k: request.top_k.unwrap_or(0),
            min_p,
            seed: request.seed.map(|s| s as u32).unwrap_or_else(random_seed),
            stop,
            turn_stops,
            grammar,
            ignore_eos: false,
            skip_leading_whitespace: self.shared.format.skips_leading_whitespace(),
            top_logprobs: top_logprobs(request)?,
        })
    }

    /// The tokens that end an answer when scoring `choices`; `None` when this engine cannot score.
    fn answer_end(&self) -> Option<Vec<LlamaToken>> {
        self.shared.answer_end.tokens(&self.shared.model)
    }

    /// The sampler chain and the grammar sampler of a generating request.
    fn generation(&self, params: &SamplingParams) -> Result<Work> {
        let grammar = params
            .grammar
            .as_ref()
            .map(|g| {
                LlamaSampler::grammar(&self.shared.model, g, "root").map_err(|e| {
                    BackendError::InvalidRequest(format!("output constraint grammar: {e}"))
                })
            })
            .transpose()?;
        let mut chain = Vec::new();
        if params.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if params.top_k > 0 {
                chain.push(LlamaSampler::top_k(params.top_k));
            }
            if params.top_p < 1.0 {
                chain.push(LlamaSampler::top_p(params.top_p, 1));
            }
            if params.min_p > 0.0 {
                chain.push(LlamaSampler::min_p(params.min_p, 1));
            }
            chain.push(LlamaSampler::temp(params.temperature));
            chain.push(LlamaSampler::dist(params.seed));
        }
        Ok(Work::Generate {
            sampler: LlamaSampler::chain_simple(chain),
            grammar,
        })
    }

    /// Validate, tokenize and queue a request; the stream yields its events.
    ///
    /// A `choices` request is scored (see [`choices`]): the answer is the most probable choice
    /// exactly as listed, or at temperature > 0 a draw from the choice distribution seeded by the
    /// request's `seed` (`top_p`, `top_k` and `min_p` do not apply). `max_tokens` does not cut a
    /// scored answer: it is always a whole choice.
    pub fn submit(&self, request: &ChatRequest) -> Result<EventStream> {
        let tokens = self.prompt_tokens(request)?;
        self.check_prompt_length(tokens.len())?;
        let params = self.sampling_params(request, tokens.len())?;
        match (&request.choices, self.answer_end()) {
            (Some(choices), Some(end)) => {
                let vocab = self.shared.model.vocab();
                let set = ChoiceSet::new(
                    choices.clone(),
                    |text| vocab.tokenize(text.as_bytes(), false, false),
                    &end,
                );
                let context = self.shared.config.context_per_slot as usize;
                if tokens.len() + set.longest_feed() > context {
                    return Err(BackendError::PromptTooLong {
                        prompt_tokens: tokens.len() + set.longest_answer(),
                        context_tokens: context,
                    });
                }
                // As many lanes as the slot's context holds next to the prompt.
                let fits = (context - tokens.len()) / set.longest_feed().max(1);
                let config = &self.shared.config;
                let lanes = engine::score_lanes(config.slots, config.score_lanes).min(fits);
                self.enqueue(tokens, params, Work::Score(ChoiceScoring::new(set, lanes)))
            }
            _ => {
                let events = self.submit_tokens(tokens, params)?;
                Ok(match self.tool_set(request)? {
                    Some(tools) => tools::stream::tool_call_events(events, &tools.choice),
                    None => events,
                })
            }
        }
    }

    fn check_prompt_length(&self, prompt_tokens: usize) -> Result<()> {
        let context = self.shared.config.context_per_slot as usize;
        // At least one token must be generated after the prompt.
        if prompt_tokens >= context {
            return Err(BackendError::PromptTooLong {
                prompt_tokens,
                context_tokens: context,
            });
        }
        Ok(())
    }

    /// Queue already-tokenized input (hardware benchmarks feed exact token counts this way).
    pub fn submit_tokens(
        &self,
        tokens: Vec<LlamaToken>,
        params: SamplingParams,
    ) -> Result<EventStream> {
        if tokens.is_empty() {
            return Err(BackendError::InvalidRequest(
                "the prompt has no tokens".into(),
            ));
        }
        self.check_prompt_length(tokens.len())?;
        let work = self.generation(&params)?;
        self.enqueue(tokens, params, work)
    }

    fn enqueue(
        &self,
        tokens: Vec<LlamaToken>,
        params: SamplingParams,
        work: Work,
    ) -> Result<EventStream> {
        let (events, rx) = unbounded_channel();
        let job = Job {
            tokens,
            params,
            work,
            events,
        };
        let admission = &self.shared.admission;
        match admission.push(job) {
            Ok(()) => Ok(Box::pin(UnboundedReceiverStream::new(rx))),
            Err(Refused::Full(_)) => Err(BackendError::Overloaded {
                capacity: admission.capacity(),
            }),
            Err(Refused::Closed(_)) => {
                Err(BackendError::Engine("engine thread has stopped".into()))
            }
        }
    }

    /// Vocabulary size (for benchmarks that draw random tokens).
    pub fn vocab_size(&self) -> i32 {
        self.shared.model.n_vocab()
    }

    /// The display name of the model (file stem).
    pub fn model_name(&self) -> String {
        self.shared
            .config
            .model_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".into())
    }
}

/// ggml's build features as llama.cpp reports them (`AVX2 = 1 | FMA = 1 | …`).
pub fn system_info() -> String {
    // Make sure the backend (and so ggml's CPU backend registry) is initialised first.
    let _ = llama_backend();
    // SAFETY: llama_print_system_info returns a pointer to a static, NUL-terminated buffer.
    let ptr = unsafe { llama_cpp_sys_2::llama_print_system_info() };
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated, valid for the program's lifetime.
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .trim()
        .to_string()
}

/// Which llama.cpp this engine runs: the pinned binding crates that vendor it.
pub fn build_id() -> String {
    "llama-cpp-2 0.1.160 (llama-cpp-sys-2 0.1.161, vendored llama.cpp)".to_string()
}

/// The request's `top_logprobs`, checked: at most [`crate::MAX_TOP_LOGPROBS`], and only with
/// `logprobs: true` (as OpenAI requires).
fn top_logprobs(request: &ChatRequest) -> Result<u32> {
    let Some(n) = request.top_logprobs else {
        return Ok(0);
    };
    if n > crate::MAX_TOP_LOGPROBS {
        return Err(BackendError::InvalidRequest(format!(
            "`top_logprobs` must be between 0 and {}, got {n}",
            crate::MAX_TOP_LOGPROBS
        )));
    }
    if n > 0 && request.logprobs != Some(true) {
        return Err(BackendError::InvalidRequest(
            "`top_logprobs` needs `logprobs: true`".into(),
        ));
    }
    Ok(n)
}

fn random_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

impl Backend for LlamaEngine {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        let started = Instant::now();
        let stream = self.submit(&request)?;
        let mut response = collect_stream(stream, &self.model_name()).await?;
        response.timings.started = Some(started);
        Ok(response)
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream> {
        self.submit(&request)
    }
}
