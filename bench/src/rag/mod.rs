//! Retrieval-augmented QA scenarios: a scenario with a `rag:` section answers its questions
//! from passages of a corpus, retrieved once per run and given identically to every target.
//!
//! Why the harness retrieves, not the targets: the question is "how well does this model answer
//! *from these passages*", so the passages must not depend on the target. [`prepare`] runs
//! before any target: it cuts the corpus into passages ([`chunk`]: by markdown section, long
//! sections in overlapping windows of at most `chunk.max_tokens` encoder tokens), embeds them
//! and every item's query with the in-process all-MiniLM-L6-v2 (`backends::embed`, the same
//! loader as `/v1/embeddings`), ranks the passages by cosine ([`index`]), and writes the item's
//! top `top_k` passages into its `passages` field, which the prompt template renders. The index
//! and every item's ranking are stored in `RUN/rag/<scenario>/`; `--retrieval-from RUN` reuses
//! them exactly (another target measured later, or a rerun) without the embedding model.
//!
//! Items may mark their gold passage by an `evidence` quote: a passage is gold when its text
//! holds the quote (whitespace collapsed). Every quote must lie whole in some passage — checked
//! when the index is built, so recall is never silently computed against nothing. Passages are
//! ranked [`RECALL_DEPTH`] deep (at least `top_k`), so recall@1, @3 and @5 are measured whatever
//! `top_k` the prompt uses; each request record carries its passages and the gold rank
//! ([`RecordRetrieval`]), and the run summary aggregates them ([`summary`]).

pub mod chunk;
pub mod index;
pub mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::chunk::{chunk_markdown, collapse_whitespace, Chunk, ChunkSpec};
use self::index::{CorpusFile, Index, IndexSource, ItemRetrieval};
use crate::error::{BenchError, Result};
use crate::scenario::Scenario;

/// The item field the retrieved passages are written into (prompt templates render
/// `{{passages}}`; the `faithfulness` scorer reads it).
pub const PASSAGES_FIELD: &str = "passages";

/// How deep passages are ranked: recall@k is reported for k = 1, 3 and 5.
pub const RECALL_DEPTH: usize = 5;

/// A scenario's `rag:` section as written.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RagSpec {
    /// Markdown files or directories of them (read recursively, sorted), relative to the
    /// scenario file.
    pub corpus: Vec<String>,
    /// The all-MiniLM-L6-v2 GGUF (or another BERT-family encoder), relative to the scenario file.
    pub embedding_model: String,
    /// Item field holding the query to embed (default `question`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_field: Option<String>,
    /// Item field holding the gold evidence quote (default `evidence`; items without it have
    /// no gold passage and are left out of recall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_field: Option<String>,
    /// Passages given to the model (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// How the corpus is cut into passages.
    #[serde(default)]
    pub chunk: ChunkSpec,
}

/// A validated `rag:` section.
#[derive(Clone, Debug, PartialEq)]
pub struct RagConfig {
    /// Corpus files and directories, resolved.
    pub corpus: Vec<PathBuf>,
    /// The embedding model, resolved.
    pub embedding_model: PathBuf,
    /// Item field of the query.
    pub query_field: String,
    /// Item field of the gold evidence quote.
    pub evidence_field: String,
    /// Passages in the prompt.
    pub top_k: usize,
    /// Chunking.
    pub chunk: ChunkSpec,
}

impl RagConfig {
    /// Validate a `rag:` section of the scenario at `path` (relative paths resolve against its
    /// directory).
    pub fn new(spec: &RagSpec, path: &Path) -> std::result::Result<RagConfig, String> {
        let base = path.parent().unwrap_or(Path::new("."));
        if spec.corpus.is_empty() {
            return Err("field `rag.corpus`: list at least one file or directory".into());
        }
        let top_k = spec.top_k.unwrap_or(3);
        if top_k == 0 {
            return Err("field `rag.top_k`: must be at least 1".into());
        }
        let c = spec.chunk;
        if c.max_tokens < 16 || c.overlap_tokens * 2 > c.max_tokens {
            return Err(format!(
                "field `rag.chunk`: max_tokens {} must be at least 16 and at least twice overlap_tokens {}",
                c.max_tokens, c.overlap_tokens
            ));
        }
        Ok(RagConfig {
            corpus: spec.corpus.iter().map(|p| base.join(p)).collect(),
            embedding_model: base.join(&spec.embedding_model),
            query_field: spec
                .query_field
                .clone()
                .unwrap_or_else(|| "question".into()),
            evidence_field: spec
                .evidence_field
                .clone()
                .unwrap_or_else(|| "evidence".into()),
            top_k,
            chunk: c,
        })
    }

    /// Ranking depth: enough for recall@5 and for the prompt's `top_k`.
    pub fn depth(&self) -> usize {
        self.top_k.max(RECALL_DEPTH)
    }
}

/// What one request's prompt was given, recorded with it (`requests.jsonl`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordRetrieval {
    /// Ids of the passages in the prompt, best first.
    pub passages: Vec<String>,
    /// Whether the item marks a gold passage (only those count towards recall).
    pub gold_marked: bool,
    /// 1-based rank of the first gold passage within the ranking depth (at least 5);
    /// `None` when it was not retrieved that deep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_rank: Option<u32>,
}

/// Retrieval prepared for one scenario: per item id, what its requests record.
pub type Retrievals = BTreeMap<String, RecordRetrieval>;

/// Where [`prepare`] gets retrieval from and writes it to.
#[derive(Clone, Debug)]
pub struct PrepareOptions {
    /// The run directory: retrieval is written to `OUT/rag/<scenario>/`.
    pub out: PathBuf,
    /// A previous run directory whose stored index and rankings are reused as they are.
    pub reuse_from: Option<PathBuf>,
}

/// What [`prepare`] did for one scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Prepared {
    /// The scenario.
    pub scenario: String,
    /// Passages in the index.
    pub passages: usize,
    /// Items given passages.
    pub items: usize,
    /// The run directory the rankings were reused from, when they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
    /// Seconds spent chunking and embedding (0 when reused).
    pub index_secs: f64,
}

/// Give every item of every RAG scenario its passages (see the module docs), and store the
/// index and rankings in `OUT/rag/<scenario>/` (with `prepared.json`: what was done, how long it
/// took, where it was reused from). Scenarios without `rag:` are left alone.
pub async fn prepare(scenarios: &mut [Scenario], opts: &PrepareOptions) -> Result<Vec<Prepared>> {
    let mut done = Vec::new();
    for scenario in scenarios.iter_mut() {
        let Some(config) = scenario.rag.clone() else {
            continue;
        };
        let started = std::time::Instant::now();
        let corpus = read_corpus(&config.corpus, &scenario.path)?;
        let source = IndexSource {
            corpus: corpus
                .iter()
                .map(|(path, text)| CorpusFile {
                    path: path.clone(),
                    sha256: sha256_hex(text.as_bytes()),
                })
                .collect(),
            chunking: config.chunk,
        };
        let dir = opts.out.join("rag").join(&scenario.name);
        let (index, rankings, reused_from) = match &opts.reuse_from {
            Some(from) => {
                let from_dir = from.join("rag").join(&scenario.name);
                let index = Index::read(&from_dir.join("index.json"))?;
                if index.source != source {
                    return Err(BenchError::invalid(
                        from_dir.join("index.json"),
                        format!(
                            "built from another corpus or chunking than scenario `{}` has now; \
                             run without --retrieval-from to build a new index",
                            scenario.name
                        ),
                    ));
                }
                let stored = index::read_retrievals(&from_dir.join("retrieval.jsonl"))?;
                let by_id: BTreeMap<String, ItemRetrieval> =
                    stored.into_iter().map(|r| (r.item_id.clone(), r)).collect();
                let mut rankings = Vec::new();
                for item in &scenario.items {
                    let r = by_id.get(&item.id).cloned().ok_or_else(|| {
                        BenchError::invalid(
                            from_dir.join("retrieval.jsonl"),
                            format!("no stored retrieval for item `{}`", item.id),
                        )
                    })?;
                    rankings.push(r);
                }
                (index, rankings, Some(from.display().to_string()))
            }
            None => {
                let (index, rankings) = build(scenario, &config, &corpus, source).await?;
                (index, rankings, None)
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(&dir, e))?;
        index.write(&dir.join("index.json"))?;
        index::write_retrievals(&dir.join("retrieval.jsonl"), &rankings)?;
        let mut retrievals = Retrievals::new();
        for (item, ranking) in scenario.items.iter_mut().zip(&rankings) {
            let shown: Vec<&Chunk> = ranking
                .hits
                .iter()
                .take(config.top_k)
                .filter_map(|h| index.chunk(&h.id))
                .collect();
            item.fields.insert(
                PASSAGES_FIELD.into(),
                Value::String(render_passages(&shown)),
            );
            retrievals.insert(
                item.id.clone(),
                RecordRetrieval {
                    passages: shown.iter().map(|c| c.id.clone()).collect(),
                    gold_marked: !ranking.gold.is_empty(),
                    gold_rank: ranking.gold_rank,
                },
            );
        }
        scenario.retrievals = retrievals;
        let prepared = Prepared {
            scenario: scenario.name.clone(),
            passages: index.chunks.len(),
            items: rankings.len(),
            reused_from,
            index_secs: if opts.reuse_from.is_some() {
                0.0
            } else {
                started.elapsed().as_secs_f64()
            },
        };
        let path = dir.join("prepared.json");
        let text = serde_json::to_string_pretty(&prepared)
            .map_err(|e| BenchError::invalid(&path, e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|e| BenchError::io(&path, e))?;
        done.push(prepared);
    }
    Ok(done)
}

/// Passages as the prompt shows them: numbered, each with its heading path, blank-line apart.
pub fn render_passages(chunks: &[&Chunk]) -> String {
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| format!("[{}] {}", i + 1, c.text))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Chunk, embed and rank: a new index and every item's ranking.
async fn build(
    scenario: &Scenario,
    config: &RagConfig,
    corpus: &[(String, String)],
    source: IndexSource,
) -> Result<(Index, Vec<ItemRetrieval>)> {
    let encoder = Encoder::load(&config.embedding_model).await?;
    let mut chunks = Vec::new();
    for (path, text) in corpus {
        chunks.extend(chunk_markdown(path, text, &config.chunk, &|w| {
            encoder.count_tokens(w)
        }));
    }
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    let vectors = encoder.embed(&texts).await?;
    let mut queries = Vec::with_capacity(scenario.items.len());
    for item in &scenario.items {
        queries.push(field_text(scenario, item, &config.query_field)?);
    }
    let query_refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let query_vectors = encoder.embed(&query_refs).await?;
    let model = crate::suite::hash_file(&config.embedding_model)?;
    let index = Index {
        source,
        model,
        chunks,
        vectors,
    };
    let collapsed: Vec<String> = index
        .chunks
        .iter()
        .map(|c| collapse_whitespace(&c.text))
        .collect();
    let mut rankings = Vec::with_capacity(scenario.items.len());
    for ((item, query), vector) in scenario.items.iter().zip(queries).zip(&query_vectors) {
        let gold: Vec<String> = match item.fields.get(&config.evidence_field) {
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                let quote =
                    collapse_whitespace(&field_text(scenario, item, &config.evidence_field)?);
                let gold: Vec<String> = index
                    .chunks
                    .iter()
                    .zip(&collapsed)
                    .filter(|(_, text)| text.contains(&quote))
                    .map(|(c, _)| c.id.clone())
                    .collect();
                if gold.is_empty() {
                    return Err(BenchError::invalid(
                        &scenario.path,
                        format!(
                            "item `{}`: its {} quote is in no passage (quote it exactly from one \
                             section, shorter than {} tokens): {quote:?}",
                            item.id, config.evidence_field, config.chunk.overlap_tokens
                        ),
                    ));
                }
                gold
            }
        };
        let hits = index.search(vector, config.depth());
        let gold_rank = hits
            .iter()
            .position(|h| gold.contains(&h.id))
            .map(|p| p as u32 + 1);
        rankings.push(ItemRetrieval {
            item_id: item.id.clone(),
            query,
            hits,
            gold,
            gold_rank,
        });
    }
    Ok((index, rankings))
}

fn field_text(
    scenario: &Scenario,
    item: &crate::scenario::ScenarioItem,
    field: &str,
) -> Result<String> {
    match item.fields.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(BenchError::invalid(
            &scenario.path,
            format!("item `{}`: field `{field}` must be non-empty text", item.id),
        )),
    }
}

/// Every markdown file of the corpus (directories read recursively), as (path relative to its
/// corpus entry's directory, text), sorted by path within each entry.
fn read_corpus(entries: &[PathBuf], scenario: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for entry in entries {
        let mut files = Vec::new();
        let root = if entry.is_dir() {
            collect_markdown(entry, &mut files)?;
            entry.clone()
        } else {
            files.push(entry.clone());
            entry.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| BenchError::io(&f, e))?;
            let rel = f
                .strip_prefix(&root)
                .unwrap_or(&f)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, text));
        }
    }
    if out.is_empty() {
        return Err(BenchError::invalid(
            scenario,
            "field `rag.corpus`: no markdown files found",
        ));
    }
    Ok(out)
}

fn collect_markdown(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| BenchError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| BenchError::io(dir, e))?.path();
        if path.is_dir() {
            collect_markdown(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The embedding model as the index builder uses it: token counts and unit vectors.
#[cfg(feature = "llama")]
struct Encoder {
    engine: backends::embed::EmbeddingEngine,
}

/// Texts embedded per call (the engine packs them into passes of its own size).
#[cfg_attr(not(feature = "llama"), allow(dead_code))]
const EMBED_BATCH: usize = 64;

#[cfg(feature = "llama")]
impl Encoder {
    async fn load(model: &Path) -> Result<Encoder> {
        let mut config = backends::EmbeddingEngineConfig::new(model);
        // One thread: on a busy machine llama.cpp's threads wait on each other at every op of a
        // small encoder (BENCHMARKS.md, "Embeddings"), and an index is built once per run.
        config.threads = 1;
        let engine =
            tokio::task::spawn_blocking(move || backends::embed::EmbeddingEngine::load(config))
                .await
                .map_err(|e| {
                    BenchError::Analysis(format!("embedding model loading thread failed: {e}"))
                })??;
        Ok(Encoder { engine })
    }

    /// WordPiece tokens of `text`, without `[CLS]`/`[SEP]`.
    fn count_tokens(&self, text: &str) -> usize {
        self.engine.tokenize(text).len().saturating_sub(2)
    }

    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(EMBED_BATCH) {
            out.extend(self.engine.embed(batch).await?.vectors);
        }
        Ok(out)
    }
}

/// Without the local engine there is no encoder: building an index is refused at load.
#[cfg(not(feature = "llama"))]
enum Encoder {}

#[cfg(not(feature = "llama"))]
impl Encoder {
    async fn load(model: &Path) -> Result<Encoder> {
        Err(BenchError::Analysis(format!(
            "cannot load {} to build a retrieval index: this build has no local engine (build \
             with the `llama` feature, or reuse a stored index with --retrieval-from)",
            model.display()
        )))
    }

    fn count_tokens(&self, _text: &str) -> usize {
        match *self {}
    }

    async fn embed(&self, _texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        match *self {}
    }
}
