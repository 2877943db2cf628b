//! Dashboard users: argon2id password hashes, login sessions and the
//! failed-login limit.
//!
//! - **Passwords** are configured as argon2id PHC strings
//!   (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), printed by
//!   `storepulse users hash` (password on stdin). [`hash_password`] uses the
//!   `argon2` crate's defaults (OWASP's minimum: 19 MiB, 2 passes, 1 lane).
//! - **Sessions** are random 256-bit tokens (OS RNG) sent as an `HttpOnly;
//!   SameSite=Strict` cookie ([`SESSION_COOKIE`]). The table keeps their
//!   SHA-256 only, in memory: a restart logs everyone out. A session lives
//!   `ttl_secs` from login (default [`DEFAULT_SESSION_TTL_SECS`], 12 h),
//!   not extended by use. Expired ones are purged at each login.
//! - **Failed logins** are limited per user name ([`LoginLimiter`]): after
//!   `max_failed_logins` failures (default 5) within `lockout_secs` (default
//!   300) of the first one, every login for that name is refused with 429
//!   and `Retry-After`, without checking the password, until that window
//!   ends. A success clears the name's count. Unknown names are counted
//!   like real ones (so 429 tells nothing about whether a name exists); at
//!   most [`MAX_TRACKED_NAMES`] names are tracked, the oldest window evicted
//!   first. Limits: per process, in memory; a name under attack is locked
//!   for its real user too (the price of a simple per-name limit).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::access::Principal;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "storepulse_session";

/// Default session lifetime: 12 hours (a working day).
pub const DEFAULT_SESSION_TTL_SECS: u64 = 12 * 3600;

/// Default number of failed logins per name before it is locked.
pub const DEFAULT_MAX_FAILED_LOGINS: u32 = 5;

/// Default lock window, from the first failure.
pub const DEFAULT_LOGIN_LOCKOUT_SECS: u64 = 300;

/// Most names the failed-login limiter remembers at once.
pub const MAX_TRACKED_NAMES: usize = 10_000;

/// `[access.sessions]`: login sessions and the failed-login limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// How long a login session lasts, in seconds. Default 43200 (12 h).
    pub ttl_secs: u64,
    /// Failed logins of one user name before further attempts are refused
    /// (429). Default 5.
    pub max_failed_logins: u32,
    /// How long a name stays locked, counted from its first failure, in
    /// seconds. Default 300.
    pub lockout_secs: u64,
    /// Adds `Secure` to the session cookie: set it when the API is behind
    /// HTTPS (browsers then send the cookie over HTTPS only). Default false.
    pub secure_cookie: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ttl_secs: DEFAULT_SESSION_TTL_SECS,
            max_failed_logins: DEFAULT_MAX_FAILED_LOGINS,
            lockout_secs: DEFAULT_LOGIN_LOCKOUT_SECS,
            secure_cookie: false,
        }
    }
}

impl SessionConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// A message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl_secs == 0 {
            return Err("access.sessions.ttl_secs: must be > 0".into());
        }
        if self.max_failed_logins == 0 {
            return Err("access.sessions.max_failed_logins: must be > 0".into());
        }
        if self.lockout_secs == 0 {
            return Err("access.sessions.lockout_secs: must be > 0".into());
        }
        Ok(())
    }
}

/// The argon2id PHC string of a password, with a fresh random salt.
///
/// # Errors
/// Only if the hasher fails (it does not with the default parameters).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks that `text` is an argon2id PHC string.
///
/// # Errors
/// What is wrong with it.
pub fn check_phc(text: &str) -> Result<(), String> {
    let hash = PasswordHash::new(text).map_err(|e| format!("not a PHC string: {e}"))?;
    if hash.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "algorithm {:?}: must be argon2id (storepulse users hash)",
            hash.algorithm.as_str()
        ));
    }
    if hash.hash.is_none() || hash.salt.is_none() {
        return Err("not a PHC string: no salt or hash".into());
    }
    Ok(())
}

/// Whether `password` matches the PHC string `phc` (false for a malformed
/// string). Takes the hash's cost (tens of ms): call it on the blocking pool.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A hash of a password nobody has, with the default parameters: an
/// unknown user's login is verified against it, so it takes as long as a
/// known user's.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        // Hashing with the default parameters does not fail; an empty
        // string would only make unknown users fail faster.
        hash_password(&password).unwrap_or_default()
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves whole entries (inserts and
    // removes only), so the data is still consistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

struct Session {
    principal: Principal,
    expires: Instant,
}

/// The login sessions of this process.
pub struct Sessions {
    ttl: Duration,
    table: Mutex<HashMap<[u8; 32], Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .field("open", &lock(&self.table).len())
            .finish()
    }
}

impl Sessions {
    /// An empty table whose sessions last `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Opens a session for `principal`; returns its token (64 hex chars).
    pub fn create(&self, principal: Principal) -> String {
        self.create_at(principal, Instant::now())
    }

    fn create_at(&self, principal: Principal, now: Instant) -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut table = lock(&self.table);
        table.retain(|_, s| s.expires > now);
        table.insert(
            token_key(&token),
            Session {
                principal,
                expires: now + self.ttl,
            },
        );
        token
    }

    /// The principal of a live session.
    pub fn get(&self, token: &str) -> Option<Principal> {
        self.get_at(token, Instant::now())
    }

    fn get_at(&self, token: &str, now: Instant) -> Option<Principal> {
        let key = token_key(token);
        let mut table = lock(&self.table);
        match table.get(&key) {
            Some(s) if s.expires > now => Some(s.principal.clone()),
            Some(_) => {
                table.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session (logout); false when there was none.
    pub fn remove(&self, token: &str) -> bool {
        lock(&self.table).remove(&token_key(token)).is_some()
    }
}

struct Failures {
    count: u32,
    since: Instant,
}

/// Failed logins per user name (see the module doc).
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    table: Mutex<HashMap<String, Failures>>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("max_failures", &self.max_failures)
            .field("window", &self.window)
            .finish()
    }
}

impl LoginLimiter {
    /// A limiter allowing `max_failures` per name within `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` while `name` is locked.
    ///
    /// # Errors
    /// The time until the name is unlocked.
    pub fn check(&self, name: &str) -> Result<(), Duration> {
        self.check_at(name, Instant::now())
    }

    fn check_at(&self, name: &str, now: Instant) -> Result<(), Duration> {
        let mut table = lock(&self.table);
        let Some(f) = table.get(name) else {
            return Ok(());
        };
        let ends = f.since + self.window;
        if ends <= now {
            table.remove(name);
            return Ok(());
        }
        if f.count >= self.max_failures {
            return Err(ends - now);
        }
        Ok(())
    }

    /// Counts a failed login of `name`.
    pub fn failed(&self, name: &str) {
        self.failed_at(name, Instant::now());
    }

    fn failed_at(&self, name: &str, now: Instant) {
        let mut table = lock(&self.table);
        if let Some(f) = table.get_mut(name) {
            if f.since + self.window > now {
                f.count = f.count.saturating_add(1);
                return;
            }
        }
        if table.len() >= MAX_TRACKED_NAMES && !table.contains_key(name) {
            table.retain(|_, f| f.since + self.window > now);
            if table.len() >= MAX_TRACKED_NAMES {
                let oldest = table
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    table.remove(&oldest);
                }
            }
        }
        table.insert(
            name.to_owned(),
            Failures {
                count: 1,
                since: now,
            },
        );
    }

    /// A successful login of `name`: forgets its failures.
    pub fn succeeded(&self, name: &str) {
        lock(&self.table).remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_argon2id() {
        let phc = hash_password("s3cret").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        check_phc(&phc).unwrap();
        assert!(verify_password(&phc, "s3cret"));
        assert!(!verify_password(&phc, "s3cret "));
        assert!(!verify_password("garbage", "s3cret"));
        assert!(check_phc("garbage").is_err());
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$6TDdPsF7q2DSl2lxRnrK0Q";
        assert!(check_phc(argon2i).unwrap_err().contains("argon2id"));
        check_phc(dummy_hash()).unwrap();
        assert!(!verify_password(dummy_hash(), ""));
    }

    fn principal() -> Principal {
        Principal::for_tests("someone")
    }

    #[test]
    fn sessions_expire_and_end() {
        let sessions = Sessions::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let token = sessions.create_at(principal(), t0);
        assert_eq!(token.len(), 64);
        let other = sessions.create_at(principal(), t0);
        assert_ne!(token, other, "tokens are random");
        assert_eq!(
            sessions
                .get_at(&token, t0 + Duration::from_secs(9))
                .unwrap()
                .name(),
            "someone"
        );
        assert!(sessions
            .get_at(&token, t0 + Duration::from_secs(10))
            .is_none());
        assert!(sessions.get_at("nope", t0).is_none());
        assert!(sessions.remove(&other));
        assert!(sessions.get_at(&other, t0).is_none());
        assert!(!sessions.remove(&other));
    }

    #[test]
    fn failed_logins_lock_a_name_for_the_window() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(limiter.check_at("ann", t0).is_ok(), "attempt {i}");
            limiter.failed_at("ann", t0 + Duration::from_secs(i));
        }
        assert_eq!(
            limiter.check_at("ann", t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(50))
        );
        // Other names are not affected.
        assert!(limiter.check_at("bob", t0).is_ok());
        // The window ends 60 s after the first failure.
        assert!(limiter
            .check_at("ann", t0 + Duration::from_secs(60))
            .is_ok());
        // A success clears the count.
        limiter.failed_at("bob", t0);
        limiter.failed_at("bob", t0);
        limiter.succeeded("bob");
        limiter.failed_at("bob", t0);
        limiter.failed_at("bob", t0);
        assert!(limiter.check_at("bob", t0).is_ok());
    }

    #[test]
    fn the_limiter_is_bounded() {
        let limiter = LoginLimiter::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        limiter.failed_at("first", t0);
        for i in 0..MAX_TRACKED_NAMES {
            limiter.failed_at(&format!("n{i}"), t0 + Duration::from_millis(1));
        }
        assert!(lock(&limiter.table).len() <= MAX_TRACKED_NAMES);
        // The oldest window was evicted.
        assert!(limiter.check_at("first", t0).is_ok());
    }
}
