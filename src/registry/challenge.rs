//! Registry authentication state: the host's login (renewed before it expires — an ECR token lasts
//! 12 hours, a batch may run longer), answers to `WWW-Authenticate` challenges (Basic, or Bearer
//! tokens fetched from the realm), and the scopes a run will need, asked for in one token so that
//! a base and a target on one host — and a cross-repository mount — share it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine;
use reqwest::header::AUTHORIZATION;
use tracing::debug;

use super::auth::{Credentials, Login, Renewal};
use super::errors::{ErrorBody, RegistryError, Result, network_error};

/// A login this close to its expiry is renewed before the next request.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// A bearer token and the scopes it was asked for.
struct Token {
    scopes: BTreeSet<String>,
    value: String,
}

/// What the client knows about authenticating to its host.
pub(super) struct AuthState {
    login: Mutex<Login>,
    renewal: Option<Renewal>,
    tokens: Mutex<Vec<Token>>,
    /// Counts tokens obtained, so that requests refused at once by a 401 fetch one token, not one each.
    generation: AtomicU64,
    fetching: tokio::sync::Mutex<()>,
    /// Scopes the run announced it will need (`repository:NAME:pull[,push]`).
    wanted: Mutex<BTreeSet<String>>,
    use_basic: AtomicBool,
}

impl AuthState {
    pub(super) fn new(login: Login, renewal: Option<Renewal>) -> Self {
        AuthState {
            login: Mutex::new(login),
            renewal,
            tokens: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(()),
            wanted: Mutex::new(BTreeSet::new()),
            use_basic: AtomicBool::new(false),
        }
    }

    fn credentials(&self) -> Credentials {
        lock(&self.login).credentials.clone()
    }

    pub(super) fn set_renewal(&mut self, renewal: Renewal) {
        self.renewal = Some(renewal);
    }
}

/// Where a token is asked for, for messages: the HTTP client, the registry and the repository.
pub(super) struct TokenService<'a> {
    pub http: &'a reqwest::Client,
    pub registry: &'a str,
    pub repository: &'a str,
}

/// The scope a request on `repository` needs.
pub(super) fn scope(repository: &str, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{repository}:{actions}")
}

/// A token asked for `granted` scopes serves `needed` (a push scope also serves pulls).
fn covers(granted: &BTreeSet<String>, needed: &str) -> bool {
    granted.contains(needed)
        || needed
            .strip_suffix(":pull")
            .is_some_and(|repo| granted.contains(&format!("{repo}:pull,push")))
}

impl AuthState {
    /// Announces a scope the run will need, so that the first token asked for covers it too.
    pub(super) fn will_need(&self, scope: String) {
        lock(&self.wanted).insert(scope);
    }

    /// Logs in again when the login is about to expire and can be renewed.
    pub(super) async fn renew_if_expiring(&self, registry: &str) -> Result<()> {
        let Some(renewal) = &self.renewal else {
            return Ok(());
        };
        let expiring = lock(&self.login)
            .expires
            .is_some_and(|at| at <= SystemTime::now() + RENEW_BEFORE);
        if !expiring {
            return Ok(());
        }
        debug!("{registry}: the login is about to expire; logging in again");
        let login = renewal()
            .await
            .map_err(|detail| RegistryError::Unauthorized {
                registry: registry.to_string(),
                repository: String::new(),
                status: 401,
                hint: detail,
            })?;
        *lock(&self.login) = login;
        lock(&self.tokens).clear();
        Ok(())
    }

    /// What to do when `registry` refuses us.
    pub(super) fn hint(&self, registry: &str) -> String {
        match self.credentials() {
            Credentials::Anonymous => format!(
                "no credentials for {registry}: log in with `docker login {registry}` (or a credential helper), or use --registry-auth ecr for an ECR endpoint"
            ),
            Credentials::Basic { .. } => format!(
                "the credentials for {registry} were refused or lack permission for this repository; log in again or check its permissions"
            ),
        }
    }

    /// How many tokens were obtained so far: a request notes it before it is sent.
    pub(super) fn token_generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The Authorization header for a request needing all of `scopes`, if we have one.
    pub(super) fn header(&self, scopes: &[String]) -> Option<String> {
        let tokens = lock(&self.tokens);
        if let Some(token) = tokens
            .iter()
            .find(|t| scopes.iter().all(|s| covers(&t.scopes, s)))
        {
            return Some(format!("Bearer {}", token.value));
        }
        drop(tokens);
        if self.use_basic.load(Ordering::Relaxed) {
            return self.basic_header();
        }
        None
    }

    fn basic_header(&self) -> Option<String> {
        match self.credentials() {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Credentials::Anonymous => None,
        }
    }

    /// Answers a challenge for a request needing `needed`, sent when `sent_at` tokens had been
    /// obtained. The token is asked for every scope announced with `will_use` too, unless `narrow`
    /// (a token for all of them was not enough).
    pub(super) async fn answer_challenge(
        &self,
        to: &TokenService<'_>,
        challenge: &str,
        needed: &[String],
        narrow: bool,
        sent_at: u64,
    ) -> Result<()> {
        let lower = challenge.to_ascii_lowercase();
        if lower.starts_with("basic") {
            self.use_basic.store(true, Ordering::Relaxed);
            return Ok(());
        }
        if !lower.starts_with("bearer") {
            return Ok(());
        }
        let params = parse_challenge(&challenge[6..]);
        let Some(realm) = params.get("realm") else {
            return Ok(());
        };
        let _one_at_a_time = self.fetching.lock().await;
        if self.token_generation() > sent_at
            && self
                .header(needed)
                .is_some_and(|h| h.starts_with("Bearer "))
        {
            // Another request fetched a token that serves this one while it waited.
            return Ok(());
        }
        let needed: BTreeSet<String> = needed.iter().cloned().collect();
        let mut scopes = needed.clone();
        if !narrow {
            scopes.extend(lock(&self.wanted).iter().cloned());
        }
        let service = params.get("service");
        let (scopes, value) = match self.fetch_token(to, realm, service, &scopes).await {
            Ok(value) => (scopes, value),
            // Some token services refuse a request naming any scope they will not grant.
            Err(_) if scopes != needed => {
                let value = self.fetch_token(to, realm, service, &needed).await?;
                (needed, value)
            }
            Err(e) => return Err(e),
        };
        lock(&self.tokens).push(Token { scopes, value });
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn fetch_token(
        &self,
        to: &TokenService<'_>,
        realm: &str,
        service: Option<&String>,
        scopes: &BTreeSet<String>,
    ) -> Result<String> {
        let mut url = reqwest::Url::parse(realm).map_err(|_| RegistryError::Status {
            registry: to.registry.to_string(),
            repository: to.repository.to_string(),
            operation: "authentication".into(),
            status: 401,
            body: ErrorBody::parse(b"the registry's token realm is not a URL"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = service {
                q.append_pair("service", service);
            }
            for scope in scopes {
                q.append_pair("scope", scope);
            }
        }
        let mut req = to.http.get(url.clone());
        if let Some(basic) = self.basic_header() {
            req = req.header(AUTHORIZATION, basic);
        }
        let response = req
            .send()
            .await
            .map_err(|e| network_error(to.registry, "token request", &e))?;
        let refused = |status: u16, hint: String| RegistryError::Unauthorized {
            registry: to.registry.to_string(),
            repository: to.repository.to_string(),
            status,
            hint,
        };
        if !response.status().is_success() {
            return Err(refused(response.status().as_u16(), self.hint(to.registry)));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| network_error(to.registry, "token request", &e))?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                refused(
                    401,
                    "the registry's token service answered without a token; check the registry's auth setup".into(),
                )
            })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("no panics while locked")
}

fn parse_challenge(params: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(stripped) = rest.strip_prefix('"') {
            let end = stripped.find('"').unwrap_or(stripped.len());
            value = stripped[..end].to_string();
            rest = stripped.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches([',', ' ']);
        out.insert(key, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn parses_bearer_challenges() {
        let p = parse_challenge(
            r#" realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/python:pull");
    }

    #[test]
    fn a_push_scope_serves_pulls_of_the_same_repository_only() {
        let granted: BTreeSet<String> = [scope("app", true), scope("base", false)].into();
        assert!(covers(&granted, &scope("app", false)));
        assert!(covers(&granted, &scope("app", true)));
        assert!(covers(&granted, &scope("base", false)));
        assert!(!covers(&granted, &scope("base", true)));
        assert!(!covers(&granted, &scope("other", false)));
    }

    fn basic(password: &str) -> Credentials {
        Credentials::Basic {
            username: "AWS".into(),
            password: password.into(),
        }
    }

    #[test]
    fn an_expiring_login_is_renewed_once_and_then_used() {
        let renewals = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&renewals);
        let renewal: Renewal = Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                Ok(Login {
                    credentials: basic("fresh"),
                    expires: Some(SystemTime::now() + Duration::from_secs(12 * 3600)),
                })
            })
        });
        let stale = Login {
            credentials: basic("stale"),
            expires: Some(SystemTime::now() + Duration::from_secs(60)),
        };
        let auth = AuthState::new(stale, Some(renewal));
        auth.use_basic.store(true, Ordering::Relaxed);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            auth.renew_if_expiring("h").await.unwrap();
            auth.renew_if_expiring("h").await.unwrap();
        });
        assert_eq!(renewals.load(Ordering::SeqCst), 1);
        let expected = base64::engine::general_purpose::STANDARD.encode("AWS:fresh");
        assert_eq!(
            auth.header(&[scope("app", true)]),
            Some(format!("Basic {expected}"))
        );
    }

    #[test]
    fn a_login_that_does_not_expire_is_never_renewed() {
        let renewal: Renewal = Arc::new(|| Box::pin(async { Err("must not be called".into()) }));
        let login = Login {
            credentials: basic("p"),
            expires: None,
        };
        let auth = AuthState::new(login, Some(renewal));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(auth.renew_if_expiring("h")).is_ok());
    }
}
