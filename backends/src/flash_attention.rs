//! The local engine's flash-attention setting, kept outside the `llama` feature so configuration
//! can name it in builds without the engine.

use std::fmt;
use std::str::FromStr;

/// Whether llama.cpp computes attention with its flash-attention kernels.
///
/// The default is `Auto`, llama.cpp's own default, which turns them on wherever the model allows.
/// Flash attention computes each query row on its own, so a sequence's logits do not depend on
/// which other sequences share its batch: greedy output stays identical under continuous batching.
/// `Off` is faster on CPU once the context holds a prompt (on this project's 2-core Xeon,
/// `llama-bench -fa 0,1 -d 512` gave SmolLM2-135M 65 t/s without it and 34 t/s with it; see
/// BENCHMARKS.md), but the batched matrix products then round differently with the batch's size
/// and greedy answers can change with load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlashAttention {
    /// Let llama.cpp decide (on wherever the model supports it).
    #[default]
    Auto,
    /// Always use the flash-attention kernels.
    On,
    /// Never use them (faster on CPU, but greedy output may vary with batch size).
    Off,
}

impl FlashAttention {
    /// The name used in configs and on the command line (`auto`, `on`, `off`).
    pub fn as_str(self) -> &'static str {
        match self {
            FlashAttention::Auto => "auto",
            FlashAttention::On => "on",
            FlashAttention::Off => "off",
        }
    }
}

impl fmt::Display for FlashAttention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FlashAttention {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(FlashAttention::Auto),
            "on" | "true" | "1" => Ok(FlashAttention::On),
            "off" | "false" | "0" => Ok(FlashAttention::Off),
            other => Err(format!(
                "flash attention must be auto, on or off (got `{other}`)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_three_settings_and_names_bad_input() {
        assert_eq!("auto".parse(), Ok(FlashAttention::Auto));
        assert_eq!("ON".parse(), Ok(FlashAttention::On));
        assert_eq!("off".parse(), Ok(FlashAttention::Off));
        assert_eq!(FlashAttention::default(), FlashAttention::Auto);
        let err = "fast".parse::<FlashAttention>().unwrap_err();
        assert!(err.contains("`fast`"), "{err}");
    }
}
