//! Client authentication and permissions: who a client is (AUTH, HELLO
//! AUTH) and what it may run and touch, in the spirit of Redis ACLs.
//! Pure: the session asks, this answers.
//!
//! # Layout
//! - `rules`: [`CommandRules`], compiled `+@read -flushall` style rules.

mod rules;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

pub use crate::glob::matches as glob_matches;
pub use rules::{CommandRules, RuleError};

use crate::command::CommandId;
use crate::secrets::Secret;

/// A client user: a name, a password, and what it may do.
#[derive(Debug)]
pub struct User {
    pub name: Arc<str>,
    password: Option<Secret>,
    pub commands: CommandRules,
    /// Key patterns the user may touch; None: every key.
    pub keys: Option<Vec<Vec<u8>>>,
    /// No restriction at all: the permission check is skipped.
    pub unrestricted: bool,
}

impl User {
    pub fn new(
        name: &str,
        password: Option<Secret>,
        commands: CommandRules,
        keys: Option<Vec<Vec<u8>>>,
    ) -> User {
        let unrestricted = keys.is_none()
            && (0..CommandId::COUNT).all(|i| commands.allows(Some(CommandId(i as u16))))
            && commands.allows(None);
        User {
            name: name.into(),
            password,
            commands,
            keys,
            unrestricted,
        }
    }

    /// The user's password, if it has one (for its hash in ACL GETUSER).
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// Constant-time in the password's content.
    fn password_is(&self, candidate: &[u8]) -> bool {
        match &self.password {
            None => true,
            Some(secret) => secret.matches(candidate),
        }
    }

    /// Whether the user may touch `key`.
    pub fn may_access(&self, key: &[u8]) -> bool {
        match &self.keys {
            None => true,
            Some(patterns) => patterns.iter().any(|p| glob_matches(p, key)),
        }
    }
}

/// Redis's words for a denied command.
pub fn denied_command(name: &str) -> String {
    format!("NOPERM this user has no permissions to run the '{name}' command")
}

/// Redis's words for a denied key.
pub const DENIED_KEY: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Why AUTH (or HELLO's AUTH option) did not authenticate; `Display` is
/// Redis's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// AUTH with a word count it does not take.
    #[error("ERR syntax error")]
    Syntax,
    /// AUTH <password> while the default user takes any password.
    #[error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")]
    NoPasswordConfigured,
    /// No such user, or not its password: held back longer the more a
    /// client fails, so passwords cannot be guessed quickly.
    #[error("{WRONGPASS}")]
    WrongPass,
}

/// A pool's client users.
#[derive(Debug)]
pub struct Users {
    /// The `default` user: without a password configured it takes any
    /// password and clients start authenticated as it.
    default: Arc<User>,
    named: Vec<Arc<User>>,
    /// Some credential is configured: clients start unauthenticated.
    required: bool,
    failures: AtomicU64,
    /// Failures in the current second (high 32 bits: the second).
    window: AtomicU64,
    max_failures_per_second: u32,
}

impl Users {
    /// No authentication: every client is the unrestricted default user.
    pub fn open() -> Users {
        Users::new(None, Vec::new(), 0)
    }

    /// `password`: the default user's (requirepass); `named`: other users
    /// (a user named `default` replaces the default user).
    pub fn new(password: Option<Secret>, named: Vec<User>, max_failures_per_second: u32) -> Users {
        let required = password.is_some() || !named.is_empty();
        let mut default = User::new("default", password.clone(), CommandRules::all(), None);
        let mut others = Vec::new();
        for user in named {
            if &*user.name == "default" {
                default = user;
            } else {
                others.push(Arc::new(user));
            }
        }
        if required && password.is_none() && default.password.is_none() {
            // Users but no requirepass: the default user cannot log in
            // without a password, as Redis does when it is disabled.
            default.password = Some(Secret::new(String::new()));
            default.commands =
                CommandRules::parse("nocommands").unwrap_or_else(|_| CommandRules::all());
        }
        Users {
            default: Arc::new(default),
            named: others,
            required,
            failures: AtomicU64::new(0),
            window: AtomicU64::new(0),
            max_failures_per_second,
        }
    }

    /// The user a new client starts as: None when it must authenticate.
    pub fn initial(&self) -> Option<Arc<User>> {
        (!self.required).then(|| self.default.clone())
    }

    pub fn required(&self) -> bool {
        self.required
    }

    /// Every user, `default` first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<User>> {
        std::iter::once(&self.default).chain(&self.named)
    }

    /// The user called `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Arc<User>> {
        self.all().find(|u| u.name.as_bytes() == name)
    }

    /// Whether `user` can log in (the default user is disabled when only
    /// named users are configured).
    pub fn is_enabled(&self, user: &User) -> bool {
        !(self.required
            && user
                .password
                .as_ref()
                .is_some_and(|p| p.expose().is_empty()))
    }

    /// Checks credentials. `user` None is `AUTH <password>` (the default
    /// user). Err: the client's error message (without `-`).
    pub fn authenticate(
        &self,
        user: Option<&[u8]>,
        password: &[u8],
    ) -> Result<Arc<User>, AuthError> {
        let found = match user {
            None => {
                if !self.required {
                    return Err(AuthError::NoPasswordConfigured);
                }
                Some(&self.default)
            }
            Some(b"default") => Some(&self.default),
            Some(name) => self.named.iter().find(|u| u.name.as_bytes() == name),
        };
        match found {
            Some(user)
                if user.password_is(password)
                    && !(self.required
                        && user
                            .password
                            .as_ref()
                            .is_some_and(|p| p.expose().is_empty())) =>
            {
                Ok(user.clone())
            }
            _ => {
                self.failures.fetch_add(1, Relaxed);
                Err(AuthError::WrongPass)
            }
        }
    }

    /// Keeps `old`'s failure count (the same pool's users before a reload).
    pub fn carry_counts_from(&self, old: &Users) {
        self.failures.store(old.failures(), Relaxed);
    }

    /// Failed authentications so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }

    /// How long to hold a failure's reply: more the more this connection
    /// failed (`attempts`, this one included), and a second when the pool
    /// as a whole sees more than `max_failures_per_second`.
    pub fn failure_delay(&self, attempts: u32, now_secs: u64) -> Duration {
        let per_connection = match attempts {
            0..=3 => Duration::ZERO,
            n => Duration::from_millis(100u64 << (n - 4).min(6)),
        };
        let window = self.window.load(Relaxed);
        let count = if window >> 32 == now_secs & 0xFFFF_FFFF {
            (self.window.fetch_add(1, Relaxed) & 0xFFFF_FFFF) + 1
        } else {
            self.window
                .store(((now_secs & 0xFFFF_FFFF) << 32) | 1, Relaxed);
            1
        };
        let pool = if self.max_failures_per_second > 0
            && count > u64::from(self.max_failures_per_second)
        {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        };
        per_connection.max(pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Option<Secret> {
        Some(Secret::new(s.into()))
    }

    #[test]
    fn open_pools_start_authenticated_and_refuse_auth_with_redis_words() {
        let users = Users::open();
        assert!(users.initial().is_some_and(|u| u.unrestricted));
        assert!(users
            .authenticate(None, b"x")
            .expect_err("no password")
            .to_string()
            .contains("without any password"));
    }

    #[test]
    fn requirepass_and_named_users() {
        let reader = User::new(
            "reader",
            secret("r"),
            CommandRules::parse("+@read").expect("rules"),
            Some(vec![b"app:*".to_vec()]),
        );
        let users = Users::new(secret("top"), vec![reader], 0);
        assert!(users.initial().is_none());
        assert_eq!(
            &*users.authenticate(None, b"top").expect("default").name,
            "default"
        );
        assert_eq!(
            users
                .authenticate(None, b"nope")
                .expect_err("wrong")
                .to_string(),
            WRONGPASS
        );
        let reader = users.authenticate(Some(b"reader"), b"r").expect("reader");
        assert!(reader.may_access(b"app:1") && !reader.may_access(b"other"));
        assert!(users.authenticate(Some(b"ghost"), b"r").is_err());
        assert_eq!(users.failures(), 2);
    }

    #[test]
    fn users_without_requirepass_disable_the_default_user() {
        let app = User::new("app", secret("a"), CommandRules::all(), None);
        let users = Users::new(None, vec![app], 0);
        assert!(users.initial().is_none());
        assert!(users.authenticate(None, b"").is_err());
        assert!(users.authenticate(Some(b"default"), b"").is_err());
        assert!(users.authenticate(Some(b"app"), b"a").is_ok());
    }

    #[test]
    fn repeated_failures_are_slowed_down() {
        let users = Users::new(secret("p"), Vec::new(), 2);
        assert_eq!(users.failure_delay(1, 100), Duration::ZERO);
        assert_eq!(users.failure_delay(5, 100), Duration::from_millis(200));
        // Third failure in the same second on a pool limited to two.
        assert_eq!(users.failure_delay(1, 100), Duration::from_secs(1));
        assert_eq!(users.failure_delay(1, 101), Duration::ZERO);
    }
}
