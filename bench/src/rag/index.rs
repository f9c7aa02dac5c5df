//! The retrieval index of one RAG scenario and what it retrieved, as stored beside a run.
//!
//! `RUN/rag/<scenario>/index.json` holds every passage with its vector (little-endian `f32`,
//! base64, so a reused vector is bit for bit the one computed), the corpus files' sha256, the
//! chunking and the embedding model's sha256; `RUN/rag/<scenario>/retrieval.jsonl` holds, per
//! item, the ranked passages and where the gold passage came. A later run given
//! `--retrieval-from RUN` reads both and sends exactly the same passages, without the
//! embedding model, after checking that the corpus and the chunking are the ones stored.
//!
//! Search is exact: a dot product with every passage (the vectors are unit length, so this is
//! the cosine), best first, ties broken by passage order. A corpus of a few hundred passages
//! needs nothing cleverer.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::chunk::{Chunk, ChunkSpec};
use crate::error::{BenchError, Result};
use crate::results::ModelFile;

/// Layout version of `index.json`.
pub const INDEX_VERSION: u32 = 1;

/// A corpus file and its content hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusFile {
    /// Path relative to the corpus root (as passage ids name it).
    pub path: String,
    /// SHA-256 of the contents, hex.
    pub sha256: String,
}

/// What an index was built from: the passages are a function of these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexSource {
    /// The corpus files, in the order they were read.
    pub corpus: Vec<CorpusFile>,
    /// How they were cut into passages.
    pub chunking: ChunkSpec,
}

/// Passages and their unit-length vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Index {
    /// What the passages were made from.
    pub source: IndexSource,
    /// The embedding model that made the vectors.
    pub model: ModelFile,
    /// Every passage, in corpus order.
    pub chunks: Vec<Chunk>,
    /// One vector per passage, same order.
    pub vectors: Vec<Vec<f32>>,
}

/// One retrieved passage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The passage id (`SOURCE#N`).
    pub id: String,
    /// Cosine similarity with the query.
    pub score: f32,
}

/// What one item's query retrieved (a line of `retrieval.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemRetrieval {
    /// The item's id.
    pub item_id: String,
    /// The query text embedded.
    pub query: String,
    /// The best passages, best first, as deep as recall is measured (the first `top_k` go into
    /// the prompt).
    pub hits: Vec<Hit>,
    /// Passages holding the item's gold evidence (empty when the item marks none).
    pub gold: Vec<String>,
    /// 1-based rank of the first gold passage among `hits`; `None` when none was retrieved.
    pub gold_rank: Option<u32>,
}

/// `index.json` as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredIndex {
    version: u32,
    source: IndexSource,
    model: ModelFile,
    dimensions: usize,
    chunks: Vec<StoredChunk>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredChunk {
    id: String,
    source: String,
    heading: String,
    text: String,
    /// Little-endian f32, base64.
    vector: String,
}

impl Index {
    /// The `k` passages most similar to `query` (a unit vector), best first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Hit> {
        let mut scored: Vec<(usize, f32)> = self
            .vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.iter().zip(query).map(|(a, b)| a * b).sum()))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
            .into_iter()
            .take(k)
            .map(|(i, score)| Hit {
                id: self.chunks[i].id.clone(),
                score,
            })
            .collect()
    }

    /// The passage with this id.
    pub fn chunk(&self, id: &str) -> Option<&Chunk> {
        self.chunks.iter().find(|c| c.id == id)
    }

    /// Write `index.json`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let stored = StoredIndex {
            version: INDEX_VERSION,
            source: self.source.clone(),
            model: self.model.clone(),
            dimensions: self.vectors.first().map_or(0, Vec::len),
            chunks: self
                .chunks
                .iter()
                .zip(&self.vectors)
                .map(|(c, v)| StoredChunk {
                    id: c.id.clone(),
                    source: c.source.clone(),
                    heading: c.heading.clone(),
                    text: c.text.clone(),
                    vector: b64.encode(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>()),
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&stored)
            .map_err(|e| BenchError::invalid(path, e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| BenchError::io(path, e))
    }

    /// Read an `index.json` written by [`Index::write`].
    pub fn read(path: &Path) -> Result<Index> {
        let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
        let stored: StoredIndex =
            serde_json::from_str(&text).map_err(|e| BenchError::invalid(path, e.to_string()))?;
        if stored.version != INDEX_VERSION {
            return Err(BenchError::invalid(
                path,
                format!(
                    "index layout version {} (this harness reads {INDEX_VERSION})",
                    stored.version
                ),
            ));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut chunks = Vec::with_capacity(stored.chunks.len());
        let mut vectors = Vec::with_capacity(stored.chunks.len());
        for c in stored.chunks {
            let bytes = b64
                .decode(&c.vector)
                .map_err(|e| BenchError::invalid(path, format!("passage {}: {e}", c.id)))?;
            if bytes.len() != stored.dimensions * 4 {
                return Err(BenchError::invalid(
                    path,
                    format!(
                        "passage {}: vector of {} bytes, expected {} dimensions",
                        c.id,
                        bytes.len(),
                        stored.dimensions
                    ),
                ));
            }
            vectors.push(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            );
            chunks.push(Chunk {
                id: c.id,
                source: c.source,
                heading: c.heading,
                text: c.text,
            });
        }
        Ok(Index {
            source: stored.source,
            model: stored.model,
            chunks,
            vectors,
        })
    }
}

/// Write `retrieval.jsonl`, one [`ItemRetrieval`] per line.
pub fn write_retrievals(path: &Path, items: &[ItemRetrieval]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| BenchError::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    for item in items {
        let line =
            serde_json::to_string(item).map_err(|e| BenchError::invalid(path, e.to_string()))?;
        writeln!(w, "{line}").map_err(|e| BenchError::io(path, e))?;
    }
    w.flush().map_err(|e| BenchError::io(path, e))
}

/// Read `retrieval.jsonl`.
pub fn read_retrievals(path: &Path) -> Result<Vec<ItemRetrieval>> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| BenchError::Dataset {
                path: path.to_path_buf(),
                row: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        let chunk = |i: usize| Chunk {
            id: format!("c.md#{i}"),
            source: "c.md".into(),
            heading: "c.md".into(),
            text: format!("passage {i}"),
        };
        let s = std::f32::consts::FRAC_1_SQRT_2;
        Index {
            source: IndexSource {
                corpus: vec![CorpusFile {
                    path: "c.md".into(),
                    sha256: "00".into(),
                }],
                chunking: ChunkSpec::default(),
            },
            model: ModelFile::default(),
            chunks: (0..3).map(chunk).collect(),
            vectors: vec![vec![1.0, 0.0], vec![s, s], vec![0.0, 1.0]],
        }
    }

    #[test]
    fn search_ranks_by_cosine_and_breaks_ties_by_order() {
        let ix = index();
        let hits = ix.search(&[0.0, 1.0], 2);
        assert_eq!(hits[0].id, "c.md#2");
        assert_eq!(hits[1].id, "c.md#1");
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let tie = ix.search(&[s, s], 3);
        assert_eq!(tie[0].id, "c.md#1");
        assert_eq!(tie[1].id, "c.md#0", "equal scores keep passage order");
    }

    #[test]
    fn an_index_reads_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let mut ix = index();
        ix.vectors[1] = vec![1.0 / 3.0, -2.0 / 7.0];
        ix.write(&path).unwrap();
        assert_eq!(Index::read(&path).unwrap(), ix);
        let items = vec![ItemRetrieval {
            item_id: "q1".into(),
            query: "what?".into(),
            hits: ix.search(&[1.0, 0.0], 2),
            gold: vec!["c.md#0".into()],
            gold_rank: Some(1),
        }];
        let rpath = dir.path().join("retrieval.jsonl");
        write_retrievals(&rpath, &items).unwrap();
        assert_eq!(read_retrievals(&rpath).unwrap(), items);
    }
}
