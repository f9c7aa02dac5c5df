//! `triage config check FILE` and `triage config schema`: validate a `triage.yaml` the way
//! `triage serve` would (same errors, with file:line:col) and print what it resolves to; print
//! the JSON schema of the file (published at `schema/triage.schema.json`).

use std::path::PathBuf;

use router::config::report::{render, KeysStatus};
use router::config::Config;

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a config as `triage serve` would and print its backends, routes (in order, with
    /// conditions), prices, budgets and key tenants (never keys). Exits 1 on an error.
    Check {
        /// The config file.
        #[arg(default_value = "triage.yaml")]
        file: PathBuf,
    },
    /// Print the JSON schema of triage.yaml (editors use it through the
    /// `# yaml-language-server: $schema=...` header).
    Schema,
}

pub async fn run(cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check { file } => {
            let config = Config::load(&file)?;
            print!("{}", render(&config, &KeysStatus::from_env(&config)));
            Ok(())
        }
        ConfigCommand::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&router::config::schema())?
            );
            Ok(())
        }
    }
}
