//! Logging setup: tracing to stderr, JSON (for collectors) or text (for people).
//!
//! What is logged is decided where it happens; the rules are: requests at debug without
//! bodies, one line per denial (in `admission_review`), never a whole pod or
//! `HostAccountConfig.PluginInput`.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber for `config`'s --log-level and --log-format.
/// Fails if a subscriber is already installed or the level does not parse.
pub fn init(config: &Config) -> Result<(), String> {
    let filter = EnvFilter::try_new(config.log_directive())
        .map_err(|e| format!("--log-level {:?}: {e}", config.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    result.map_err(|e| format!("installing the log subscriber: {e}"))
}
