//! What a GGUF model file is: architecture, parameter count, size and quantization, read from
//! its metadata by llama.cpp (`triage models list`, run metadata, `triage hw`).

use std::path::{Path, PathBuf};

use llama_cpp_2::model::LlamaModel;
use serde::Serialize;

use crate::Result;

/// What a GGUF model file is, from its metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The file this describes.
    pub path: PathBuf,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// `general.architecture` (llama, gemma3, …).
    pub architecture: String,
    /// Number of parameters (weights).
    pub parameters: u64,
    /// Bytes of tensor data.
    pub size_bytes: u64,
    /// Bytes of the file on disk.
    pub file_bytes: u64,
    /// Quantization, from `general.file_type` (Q4_1, Q4_K_M, …).
    pub quantization: String,
    /// Context length the model was trained with.
    pub context_train: u32,
    /// Tokens in the model's vocabulary.
    pub vocab_size: u32,
    /// Transformer layers (blocks).
    pub layers: u32,
    /// Whether the GGUF carries a chat template.
    pub has_chat_template: bool,
}

/// Load a model file (memory-mapped, no context) and describe it.
pub fn read_model_info(path: &Path) -> Result<ModelInfo> {
    let model = super::load_model(path)?;
    Ok(model_info(path, &model))
}

pub(super) fn model_info(path: &Path, model: &LlamaModel) -> ModelInfo {
    let file_type = model
        .meta_val_str("general.file_type")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    ModelInfo {
        path: path.to_path_buf(),
        name: model.meta_val_str("general.name").ok(),
        architecture: model
            .meta_val_str("general.architecture")
            .unwrap_or_else(|_| "unknown".into()),
        parameters: model.n_params(),
        size_bytes: model.size(),
        file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        quantization: file_type
            .map(file_type_name)
            .unwrap_or_else(|| "unknown".into()),
        context_train: model.n_ctx_train(),
        vocab_size: model.n_vocab().max(0) as u32,
        layers: model.n_layer(),
        has_chat_template: model.chat_template(None).is_ok(),
    }
}

/// llama.cpp's `enum llama_ftype` names.
fn file_type_name(ftype: u32) -> String {
    let name = match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        other => return format!("file type {other}"),
    };
    name.to_string()
}
