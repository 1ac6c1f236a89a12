//! Config text -> typed [`Config`], collecting every problem, in steps:
//!
//! 1. [`read`]: the YAML text into one [`RawPool`] per pool.
//! 2. Then for each pool:
//!    - [`pool`]: every key checked and typed, purely: addresses are read,
//!      not resolved ([`checked::Checked`]);
//!    - [`resolve`]: every address's name looked up ([`resolve::Resolved`]);
//!    - [`addresses::pool`]: the checks within the pool that need resolved
//!      addresses; then the typed [`PoolConfig`].
//! 3. [`addresses::across`]: the pools checked against each other.
//!
//! Each step reports every problem it finds, with its pool and key, and
//! the next step still runs, so one pass over a file names all of them
//! (a pool's are together, in the order of the steps).

mod addresses;
mod checked;
mod pool;
mod resolve;
#[cfg(test)]
mod tests;

use super::raw::{self, RawPool};
use super::*;

/// Parses and validates config text. On failure returns every problem,
/// each naming the pool and key.
pub fn parse(text: &str) -> Result<Config, Vec<String>> {
    let Document {
        pools,
        mut problems,
    } = read(text)?;
    if pools.is_empty() && problems.is_empty() {
        problems.push("no pools are defined".into());
    }
    let mut valid = Vec::new();
    for (name, raw) in pools {
        let checked = pool::Checker::new(&name, &mut problems).pool(raw);
        let resolved = resolve::resolve(checked, &mut problems);
        valid.extend(addresses::pool(resolved, &mut problems));
    }
    addresses::across(&valid, &mut problems);
    if problems.is_empty() {
        let pools = valid.into_iter().map(|valid| valid.pool).collect();
        Ok(Config { pools })
    } else {
        Err(problems)
    }
}

/// The pools of a file as written, in the file's order, and the problems
/// found reading them.
struct Document {
    pools: Vec<(String, RawPool)>,
    problems: Vec<String>,
}

/// The file as pools, each as written, in the file's order; a pool that
/// does not fit [`RawPool`] (an unknown key, a value of the wrong type)
/// is a problem, and the others are still read.
///
/// The text is parsed into a YAML tree once, and each pool is read from
/// the tree, so a pool that does not fit is reported for itself. The tree
/// has lost how a scalar was spelled (`0x1F` is already the number 31),
/// so the secrets (`redis_auth`, `password`, `sentinel_auth`, a user's
/// `password`) are then taken as typed from [`raw::written_secrets`], a
/// second, lenient read of the text for them alone. yaml_serde has no one
/// read that does both: asking for a scalar's text ends the whole read
/// when the value is a list or a map (which the tree reports as its
/// pool's problem alone), and ignores a tag such as `!vault`, which the
/// tree refuses.
fn read(text: &str) -> Result<Document, Vec<String>> {
    let document: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("line {} column {}: ", l.line(), l.column()))
            .unwrap_or_default();
        vec![format!("{at}not valid YAML: {e}")]
    })?;
    let mapping = match document {
        yaml_serde::Value::Mapping(mapping) => mapping,
        yaml_serde::Value::Null => return Err(vec!["no pools are defined".to_string()]),
        _ => {
            return Err(vec![
                "the top level must be a map of pool names to pools".into()
            ])
        }
    };
    let written = raw::written_secrets(text);
    let mut pools = Vec::new();
    let mut problems = Vec::new();
    for (key, value) in mapping {
        let Some(name) = key.as_str().map(str::to_string) else {
            problems.push(format!("pool name {key:?} is not a string"));
            continue;
        };
        match yaml_serde::from_value::<RawPool>(value) {
            Ok(mut raw) => {
                if let Some(written) = written.get(&name) {
                    raw.use_written(written);
                }
                pools.push((name, raw));
            }
            Err(e) => problems.push(format!("pool '{name}': {e}")),
        }
    }
    Ok(Document { pools, problems })
}

/// An entry of a list in the file: its key (`servers[1]`, `replicas.s1[0]`),
/// its line as written, and what was read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Located<T> {
    key: String,
    line: String,
    value: T,
}
