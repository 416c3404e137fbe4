//! What every part's configuration shares: [`parse`], which reads a part's
//! clap-derived `Config` from the command line and the environment (a blank
//! variable counts as unset), [`secret`], the value parser of secrets, and
//! [`ConfigError`], the error of a check clap cannot express (a key that is
//! not 32 bytes, a TTL shorter than the calls it must outlive).
//!
//! Each part's `Config` names its variables as literals (`env =
//! "ORDER_DATABASE_URL"`): clap's `env` takes no computed name, so the bind,
//! metrics and database fields stand in each part, and what they share is the
//! value they make — [`Database`](crate::db::Database), the metrics address
//! ([`crate::metrics::parse_bind`]) — rather than a macro that would hide the
//! variable names from whoever greps for them.

use clap::error::{ContextKind, ContextValue};
use clap::{Command, CommandFactory, Parser};
use secrecy::SecretString;

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    /// The environment variable (or setting) at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub fn new(var: &'static str, reason: impl Into<String>) -> Self {
        Self {
            var,
            reason: reason.into(),
        }
    }
}

/// The process's arguments and environment as a `T`; a value clap cannot
/// use ends the process with clap's message naming the variable (exit code
/// 2), `--help` lists every variable. A variable set to blanks counts as
/// unset (the default applies), as `make up` and compose files leave some.
pub fn parse<T: Parser>() -> T {
    let mut matches = without_blank_env(command::<T>()).get_matches();
    T::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit())
}

/// `T` from the environment alone (no command line): for a library reading
/// its own group of variables, e.g. `guard::GuardConfig::from_env`.
pub fn from_env<T: Parser>() -> Result<T, clap::Error> {
    let command = without_blank_env(command::<T>());
    let mut matches = command.try_get_matches_from([env!("CARGO_PKG_NAME")])?;
    T::from_arg_matches_mut(&mut matches)
}

fn without_blank_env(command: Command) -> Command {
    command.mut_args(|arg| match arg.get_env() {
        Some(name) if std::env::var(name).is_ok_and(|v| v.trim().is_empty()) => arg.env(None),
        _ => arg,
    })
}

/// `T`'s command as [`parse`] runs it: every value is named after its
/// variable (`--order-bind <ORDER_BIND>`), so clap's refusals and `--help`
/// name what an operator sets.
pub fn command<T: CommandFactory>() -> Command {
    T::command().mut_args(|arg| match arg.get_env().and_then(|e| e.to_str()) {
        Some(name) => {
            let name = name.to_owned();
            arg.value_name(name)
        }
        None => arg,
    })
}

/// `T` from `vars` alone, as if they were its whole environment: nothing is
/// read from the process's own, so tests running side by side cannot leak
/// settings into each other. Each pair is passed as the flag whose `env` is
/// the name.
pub fn from_vars<T: Parser>(vars: &[(&str, &str)]) -> Result<T, Refused> {
    let command = command::<T>().mut_args(|arg| arg.env(None));
    let mut args = vec![command.get_name().to_owned()];
    for (name, value) in vars {
        let long = T::command()
            .get_arguments()
            .find(|arg| arg.get_env().is_some_and(|env| env == *name))
            .and_then(|arg| arg.get_long().map(str::to_owned))
            .ok_or_else(|| Refused::new(name, "no such variable"))?;
        args.push(format!("--{long}={value}"));
    }
    let mut matches = command.try_get_matches_from(args)?;
    Ok(T::from_arg_matches_mut(&mut matches)?)
}

/// Why [`from_vars`] (or a part's check after it) refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The variable named by the refusal.
    pub var: String,
    pub message: String,
}

impl Refused {
    fn new(var: &str, message: impl Into<String>) -> Self {
        Self {
            var: var.to_owned(),
            message: message.into(),
        }
    }
}

impl From<clap::Error> for Refused {
    fn from(error: clap::Error) -> Self {
        // "--order-bind <ORDER_BIND>": the variable is the value's name.
        let var = match error.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(arg)) => arg
                .split_once('<')
                .map_or(arg.as_str(), |(_, name)| name.trim_end_matches('>')),
            _ => "",
        };
        Self::new(var, error.to_string())
    }
}

impl From<ConfigError> for Refused {
    fn from(error: ConfigError) -> Self {
        Self::new(error.var, error.reason)
    }
}

/// The value parser of a secret (`value_parser = platform::config::secret`):
/// kept as a [`SecretString`], so that no `Debug` of a configuration prints it.
pub fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}
