//! The local engine's flash-attention setting, kept outside the `llama` feature so configuration
//! can name it in builds without the engine.

use std::fmt;
use std::str::FromStr;

/// Whether llama.cpp computes attention with its flash-attention kernels.
///
/// The default is `Off`: on the CPU builds triage ships, llama.cpp's flash-attention path decodes
/// slower once the context holds a prompt. With `llama-bench -fa 0,1 -d 0,512` on this project's
/// 2-core Xeon, SmolLM2-135M generated 65 t/s at depth 512 without it and 34 t/s with it (see
/// BENCHMARKS.md). `Auto` leaves the choice to llama.cpp (which turns it on when it can).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlashAttention {
    Auto,
    On,
    #[default]
    Off,
}

impl FlashAttention {
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
        assert_eq!(FlashAttention::default(), FlashAttention::Off);
        let err = "fast".parse::<FlashAttention>().unwrap_err();
        assert!(err.contains("`fast`"), "{err}");
    }
}
