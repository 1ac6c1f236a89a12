//! The resolve step: every address a pool names, looked up (DNS for a
//! name; an IP address is taken as it is), after the pure step has checked
//! every key. A name that does not resolve is a problem at its key, and
//! its entry is left out.

use super::checked::{Checked, FacePlan, Listeners, Settings};
use super::pool::Checker;
use super::Located;
use crate::config::address::{AddressError, HostPort, ServerLine};
use crate::config::{ListenAddr, NodeConfig, ServerConfig};

/// One pool after the resolve step: the pure step's settings, and the
/// addresses its names resolved to.
pub(super) struct Resolved {
    pub name: String,
    /// No problem was found in the pool, nor in resolving it.
    pub clean: bool,
    pub listeners: Listeners<ListenAddr>,
    pub servers: Vec<Located<ServerConfig>>,
    /// Each replica with the index of its server in `servers`.
    pub replicas: Vec<(usize, Located<NodeConfig>)>,
    pub sentinels: Vec<NodeConfig>,
    pub coordination: Option<NodeConfig>,
    pub face: Option<FacePlan>,
    pub settings: Settings,
}

/// Resolves every address of `pool`, recording each that does not resolve.
pub(super) fn resolve(pool: Checked, problems: &mut Vec<String>) -> Resolved {
    let Checked {
        name,
        clean,
        listeners,
        servers,
        replicas,
        sentinels,
        coordination,
        face,
        settings,
    } = pool;
    let mut checker = Checker::new(&name, problems);
    let listeners =
        listeners.map(|key, listener| listener.resolve().map_err(|e| checker.problem(key, e)).ok());
    let servers = (servers.into_iter())
        .filter_map(|server| entry(&mut checker, server, ServerLine::resolve))
        .collect();
    let replicas = (replicas.into_iter())
        .filter_map(|(server, replica)| {
            Some((server, entry(&mut checker, replica, HostPort::into_node)?))
        })
        .collect();
    let sentinels = (sentinels.into_iter())
        .filter_map(|sentinel| entry(&mut checker, sentinel, HostPort::into_node))
        .map(|sentinel| sentinel.value)
        .collect();
    let coordination = coordination
        .and_then(|store| entry(&mut checker, store, HostPort::into_node))
        .map(|store| store.value);
    let clean = clean && checker.is_clean();
    Resolved {
        name,
        clean,
        listeners,
        servers,
        replicas,
        sentinels,
        coordination,
        face,
        settings,
    }
}

/// A list entry resolved, or its problem recorded at its key, after the
/// line as written (as the pure step reports a line it cannot read).
fn entry<T, U>(
    checker: &mut Checker,
    entry: Located<T>,
    resolve: impl FnOnce(T) -> Result<U, AddressError>,
) -> Option<Located<U>> {
    let Located { key, line, value } = entry;
    match resolve(value) {
        Ok(value) => Some(Located { key, line, value }),
        Err(e) => {
            checker.problem(&key, format!("'{line}': {e}"));
            None
        }
    }
}
