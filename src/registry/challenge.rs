//! Registry authentication: answering `WWW-Authenticate` challenges (Basic, or Bearer tokens fetched from
//! the realm per repository scope) and the hints given when credentials are refused.

use std::collections::HashMap;

use base64::Engine;
use reqwest::header::AUTHORIZATION;

use super::client::{Credentials, RegistryClient, RegistryError, Result};
use super::errors::ErrorBody;

impl RegistryClient {
    pub(super) fn auth_hint(&self) -> String {
        match self.credentials {
            Credentials::Anonymous => format!(
                "no credentials for {}: log in with `docker login {}` (or a credential helper), or use --registry-auth ecr for an ECR endpoint",
                self.registry, self.registry
            ),
            Credentials::Basic { .. } => format!(
                "the credentials for {} were refused or lack permission for this repository; log in again or check its permissions",
                self.registry
            ),
        }
    }

    pub(super) fn auth_header(&self, scope: &str) -> Option<String> {
        if let Some(token) = self
            .tokens
            .lock()
            .expect("no panics while locked")
            .get(scope)
        {
            return Some(format!("Bearer {token}"));
        }
        if *self.use_basic.lock().expect("no panics while locked") {
            return self.basic_header();
        }
        None
    }

    fn basic_header(&self) -> Option<String> {
        match &self.credentials {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Credentials::Anonymous => None,
        }
    }

    pub(super) async fn answer_challenge(
        &self,
        challenge: &str,
        scope: &str,
        repository: &str,
    ) -> Result<()> {
        let lower = challenge.to_ascii_lowercase();
        if lower.starts_with("basic") {
            *self.use_basic.lock().expect("no panics while locked") = true;
            return Ok(());
        }
        if !lower.starts_with("bearer") {
            return Ok(());
        }
        let params = parse_challenge(&challenge[6..]);
        let Some(realm) = params.get("realm") else {
            return Ok(());
        };
        let mut url = reqwest::Url::parse(realm).map_err(|_| RegistryError::Status {
            registry: self.registry.clone(),
            repository: repository.to_string(),
            operation: "authentication".into(),
            status: 401,
            body: ErrorBody::parse(b"the registry's token realm is not a URL"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                q.append_pair("service", service);
            }
            q.append_pair("scope", scope);
        }
        let mut req = self.http.get(url.clone());
        if let Some(basic) = self.basic_header() {
            req = req.header(AUTHORIZATION, basic);
        }
        let response = req
            .send()
            .await
            .map_err(|e| self.network_error("token request", &e))?;
        if !response.status().is_success() {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                status: response.status().as_u16(),
                hint: self.auth_hint(),
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.network_error("token request", &e))?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Unauthorized {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                status: 401,
                hint: "the registry's token service answered without a token; check the registry's auth setup".into(),
            })?
            .to_string();
        self.tokens
            .lock()
            .expect("no panics while locked")
            .insert(scope.to_string(), token);
        Ok(())
    }
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

    #[test]
    fn parses_bearer_challenges() {
        let p = parse_challenge(
            r#" realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/python:pull");
    }
}
